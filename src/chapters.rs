//! The book's chapters, once: number, title, page, examples, experiments.
//! The reproduce run, the tests, the book checks and the README's table all
//! read this list, so adding a chapter is adding one entry here.

use crate::experiments::{self, Experiment};
use crate::model::Capacity;

/// A program the reader runs with `cargo run --release --example NAME`.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    pub name: &'static str,
    /// What it is, in a few words (the README's table says it).
    pub what: &'static str,
    /// For a server: its default port and how many requests it works on at once.
    pub server: Option<Server>,
}

/// What the harness and the model need to know of a server example.
#[derive(Debug, Clone, Copy)]
pub struct Server {
    pub default_port: u16,
    pub capacity: Capacity,
}

/// One chapter of the book.
#[derive(Debug, Clone, Copy)]
pub struct Chapter {
    /// `None` for the pages around the chapters (Measuring).
    pub number: Option<u32>,
    pub title: &'static str,
    /// Its page in `book/`, or `None` while it is planned.
    pub page: Option<&'static str>,
    pub examples: &'static [Example],
    /// Its experiments, with every delay scaled by the argument (1.0 for real).
    pub experiments: fn(f64) -> Vec<Experiment>,
}

fn none(_scale: f64) -> Vec<Experiment> {
    Vec::new()
}

pub const LOAD: Example = Example {
    name: "load",
    what: "the closed-model HTTP load client (`--help` explains)",
    server: None,
};

pub const CHAPTER1_BLOCKING: Example = Example {
    name: "chapter1_blocking",
    what: "one thread, one connection at a time: a blocking server on `std::net`",
    server: Some(Server {
        default_port: 8001,
        capacity: Capacity::Limited(1),
    }),
};

pub const CHAPTER1_TINY_HTTP: Example = Example {
    name: "chapter1_tiny_http",
    what: "the same one-thread loop on tiny_http, which reads sockets on a pool of its own",
    server: Some(Server {
        default_port: 8011,
        capacity: Capacity::Limited(1),
    }),
};

pub const CHAPTER2_THREADS: Example = Example {
    name: "chapter2_threads",
    what: "W pre-forked worker processes × T threads on one port (gunicorn's model)",
    server: Some(Server {
        default_port: 8002,
        capacity: Capacity::Limited(4),
    }),
};

pub const CHAPTER4_BLOCKING: Example = Example {
    name: "chapter4_blocking",
    what: "chapter 3's server with the wait blocking, moved off the loop, or spent on CPU; a lag probe",
    server: Some(Server {
        default_port: 8004,
        capacity: Capacity::Unlimited,
    }),
};

pub const CHAPTER5_ASYNC_STD: Example = Example {
    name: "chapter5_async_std",
    what: "tide on async-std (both unmaintained; the chapter says so): an executor with a thread per core",
    server: Some(Server {
        default_port: 8005,
        capacity: Capacity::Unlimited,
    }),
};

pub const CHAPTER5_SMOL: Example = Example {
    name: "chapter5_smol",
    what: "hyper on smol, async-std's maintained successor: one executor thread by default",
    server: Some(Server {
        default_port: 8006,
        capacity: Capacity::Unlimited,
    }),
};

pub const CHAPTER6_CLIENT: Example = Example {
    name: "chapter6_client",
    what: "N requests with reqwest: sequential, from threads, or as futures (seed 003)",
    server: None,
};

pub const CHAPTER7_PROXY: Example = Example {
    name: "chapter7_proxy",
    what: "GET /proxy calls an upstream: a blocking pool per worker, or an event loop per worker (seed 004)",
    server: Some(Server {
        default_port: 8007,
        capacity: Capacity::Limited(20),
    }),
};

pub const CHAPTER8_MINIMAL_LOOP: Example = Example {
    name: "chapter8_minimal_loop",
    what: "a hand-written event loop (epoll via mio, one thread) that keeps no buffer for a waiting connection",
    server: Some(Server {
        default_port: 8008,
        capacity: Capacity::Unlimited,
    }),
};

pub const CHAPTER8_THREADS: Example = Example {
    name: "chapter8_threads",
    what: "a blocking server that starts a thread for every connection (no pool, no limit)",
    server: Some(Server {
        default_port: 8018,
        capacity: Capacity::Unlimited,
    }),
};

pub const CHAPTER3_ASYNC: Example = Example {
    name: "chapter3_async",
    what: "axum on a tokio current-thread runtime: one thread, one event loop",
    server: Some(Server {
        default_port: 8003,
        capacity: Capacity::Unlimited,
    }),
};

/// The whole book, in reading order.
pub const ALL: &[Chapter] = &[
    Chapter {
        number: None,
        title: "Measuring: the load client",
        page: Some("measuring.md"),
        examples: &[LOAD],
        experiments: none,
    },
    Chapter {
        number: Some(1),
        title: "One blocking thread",
        page: Some("chapter1_blocking.md"),
        examples: &[CHAPTER1_BLOCKING, CHAPTER1_TINY_HTTP],
        experiments: experiments::chapter1,
    },
    Chapter {
        number: Some(2),
        title: "A pool of threads, and workers",
        page: Some("chapter2_threads.md"),
        examples: &[CHAPTER2_THREADS],
        experiments: experiments::chapter2,
    },
    Chapter {
        number: Some(3),
        title: "One thread, an event loop",
        page: Some("chapter3_async.md"),
        examples: &[CHAPTER3_ASYNC],
        experiments: experiments::chapter3,
    },
    Chapter {
        number: Some(4),
        title: "Blocking inside the loop",
        page: Some("chapter4_blocking.md"),
        examples: &[CHAPTER4_BLOCKING],
        experiments: experiments::chapter4,
    },
    Chapter {
        number: Some(5),
        title: "Other runtimes: async-std, tide and smol",
        page: Some("chapter5_runtimes.md"),
        examples: &[CHAPTER5_ASYNC_STD, CHAPTER5_SMOL],
        experiments: experiments::chapter5,
    },
    Chapter {
        number: Some(6),
        title: "The client side",
        page: Some("chapter6_client.md"),
        examples: &[CHAPTER6_CLIENT],
        experiments: experiments::chapter6,
    },
    Chapter {
        number: Some(7),
        title: "A proxy under high I/O",
        page: Some("chapter7_proxy.md"),
        examples: &[CHAPTER7_PROXY],
        experiments: experiments::chapter7,
    },
    Chapter {
        number: Some(8),
        title: "Ten thousand connections",
        page: Some("chapter8_connections.md"),
        examples: &[CHAPTER8_THREADS, CHAPTER8_MINIMAL_LOOP],
        experiments: experiments::chapter8,
    },
    Chapter {
        number: Some(9),
        title: "All the cores",
        page: None,
        examples: &[],
        experiments: none,
    },
    Chapter {
        number: Some(10),
        title: "Measuring honestly",
        page: None,
        examples: &[],
        experiments: none,
    },
];

impl Chapter {
    /// `Chapter 3: One thread, an event loop`, or the title alone.
    pub fn heading(&self) -> String {
        match self.number {
            Some(number) => format!("Chapter {number}: {}", self.title),
            None => self.title.to_string(),
        }
    }
}

/// The numbers of the chapters that have experiments, in order.
pub fn measured() -> Vec<u32> {
    ALL.iter()
        .filter(|chapter| !(chapter.experiments)(1.0).is_empty())
        .filter_map(|chapter| chapter.number)
        .collect()
}

/// The chapter numbered `number`.
pub fn find(number: u32) -> Option<&'static Chapter> {
    ALL.iter().find(|chapter| chapter.number == Some(number))
}

/// Every example, in the book's order.
pub fn examples() -> impl Iterator<Item = (&'static Chapter, &'static Example)> {
    ALL.iter().flat_map(|chapter| {
        chapter
            .examples
            .iter()
            .map(move |example| (chapter, example))
    })
}

/// Every server example.
pub fn servers() -> impl Iterator<Item = (&'static Example, Server)> {
    examples().filter_map(|(_, example)| example.server.map(|server| (example, server)))
}

/// The README's table of examples.
pub fn readme_table() -> String {
    let mut out =
        String::from("| chapter | example | what it is | default port |\n|---|---|---|---|\n");
    for (chapter, example) in examples() {
        let chapter = chapter.number.map_or_else(
            || chapter.title.split(':').next().unwrap_or("").to_string(),
            |n| n.to_string(),
        );
        let port = example
            .server
            .map_or_else(|| "—".to_string(), |server| server.default_port.to_string());
        out.push_str(&format!(
            "| {chapter} | `{}` | {} | {port} |\n",
            example.name, example.what
        ));
    }
    out
}

/// The book's `SUMMARY.md`: written chapters as links, planned ones as drafts.
pub fn summary() -> String {
    let mut out = String::from("# Summary\n\n[Introduction](introduction.md)\n\n");
    for chapter in ALL {
        match chapter.page {
            Some(page) => out.push_str(&format!("- [{}]({page})\n", chapter.heading())),
            None => out.push_str(&format!("- [{} (planned)]()\n", chapter.heading())),
        }
    }
    out
}
