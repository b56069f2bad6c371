//! How the book writes numbers: times to the millisecond above a second,
//! thousands with commas, memory in KiB and MiB, CPU time as /proc counts it.

/// `10.003 s`, `212.9 ms`, `0.41 ms`: to the millisecond above a second, so
/// the server's own overhead on a sleep stays visible.
pub fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.3} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

/// [`format_ms`], or a dash for nothing measured.
pub fn format_opt_ms(ms: Option<f64>) -> String {
    ms.map_or_else(|| "—".to_string(), format_ms)
}

/// `1,000` rather than `1000`.
pub fn thousands(number: u64) -> String {
    let digits = number.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// `12.3 MiB`, from KiB.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// CPU time as /proc counts it, in 10 ms clock ticks: "< 10 ms" for none.
pub fn cpu_time(ms: u64) -> String {
    if ms == 0 {
        "< 10 ms".to_string()
    } else {
        format_ms(ms as f64)
    }
}

/// A dash where a value is missing.
pub fn or_dash<T>(value: Option<T>, show: impl FnOnce(T) -> String) -> String {
    value.map_or_else(|| "—".to_string(), show)
}

/// The sampled peak, per connection, as `1.2 KiB` or `2,163 KiB`.
pub fn kib(value: f64) -> String {
    if value >= 100.0 {
        format!("{} KiB", thousands(value.round() as u64))
    } else {
        format!("{value:.1} KiB")
    }
}
