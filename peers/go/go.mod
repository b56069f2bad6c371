module evt.book/peers/go

go 1.19
