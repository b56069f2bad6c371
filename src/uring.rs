//! Whether this machine lets a program use io_uring (chapter 13), asked the
//! way the examples will: by setting up a ring. Only `libc`, so the book
//! tool's `doctor` can ask too without linking an io_uring crate.

/// Why io_uring cannot be used here, in one line, or `None` when a ring can
/// be set up.
pub fn refusal() -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        let error = linux::try_setup().err()?;
        Some(explain(error.raw_os_error(), disabled_setting()))
    }
    #[cfg(not(target_os = "linux"))]
    {
        Some("io_uring is Linux's own interface; this operating system has none".to_string())
    }
}

/// The one line for a refused `io_uring_setup`: the error number the kernel
/// gave and `kernel.io_uring_disabled` where it could be read.
pub fn explain(errno: Option<i32>, disabled: Option<u32>) -> String {
    let setting = match disabled {
        Some(value @ 1..) => format!(" (kernel.io_uring_disabled is {value})"),
        _ => String::new(),
    };
    match errno {
        Some(libc::ENOSYS) => {
            "this kernel has no io_uring (it needs Linux 5.19 or later; WSL1 and \
             gVisor have none)"
                .to_string()
        }
        Some(libc::EPERM) | Some(libc::EACCES) => format!(
            "io_uring is refused here{setting}: the kernel setting, or a container's seccomp \
             profile (Docker's default blocks it), forbids it"
        ),
        Some(libc::ENOMEM) => "io_uring could not get its memory (RLIMIT_MEMLOCK is too low on \
             kernels before 5.12; raise `ulimit -l`)"
            .to_string(),
        Some(number) => format!(
            "io_uring could not be set up: {}",
            std::io::Error::from_raw_os_error(number)
        ),
        None => "io_uring could not be set up".to_string(),
    }
}

/// `kernel.io_uring_disabled` (0 allowed, 1 only for a group, 2 never), where
/// the kernel has the setting (6.6 and later).
pub fn disabled_setting() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;

    /// Sets up a ring of one entry and closes it.
    pub fn try_setup() -> io::Result<()> {
        // struct io_uring_params is 120 bytes; zeroed asks for nothing special.
        let mut params = [0u32; 30];
        // SAFETY: io_uring_setup reads and writes `params` (120 bytes, alive
        // for the call) and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned to us and is closed once.
        unsafe { libc::close(fd as i32) };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_is_one_line_that_names_its_cause() {
        let refused = explain(Some(libc::EPERM), Some(2));
        assert!(
            refused.contains("kernel.io_uring_disabled is 2"),
            "{refused}"
        );
        assert!(refused.contains("seccomp"), "{refused}");
        assert!(!explain(Some(libc::EPERM), Some(0)).contains("is 0"));
        assert!(explain(Some(libc::ENOSYS), None).contains("5.19"));
        assert!(explain(Some(libc::ENOMEM), None).contains("ulimit -l"));
        assert!(explain(Some(libc::EINVAL), None).contains("Invalid argument"));
        for line in [refused, explain(None, None)] {
            assert!(!line.contains('\n'));
        }
    }
}
