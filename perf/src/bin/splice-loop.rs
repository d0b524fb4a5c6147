//! The bare zero-copy send: files go to a TCP socket through a pipe with blocking `splice`
//! calls (file -> pipe -> socket, 1 MiB at a time) and their pages are dropped after each file,
//! as Ringtail's splice ring does, with nothing else around it. The reference for the broker's
//! CPU per GB on its zero-copy path (`perf/scripts/catchup-bench`).
//!
//!   splice-loop sink ADDR               accept one connection on ADDR, read it to its end
//!   splice-loop send ADDR FILE...       send the files, then print bytes, seconds, MB/s and
//!                                       this process's CPU seconds (per GB too)

use std::io::Read;
use std::os::fd::AsRawFd;
use std::time::Instant;

const PIPE_BYTES: i32 = 1 << 20;

fn cpu_seconds() -> f64 {
    // SAFETY: a zeroed rusage is a valid value of the plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn check(n: isize, what: &str) -> usize {
    if n < 0 {
        eprintln!("splice-loop: {what}: {}", std::io::Error::last_os_error());
        std::process::exit(1);
    }
    n as usize
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("sink"), Some(addr)) => {
            let listener = std::net::TcpListener::bind(addr).expect("bind");
            let (mut s, _) = listener.accept().expect("accept");
            let mut buf = vec![0u8; 1 << 20];
            let mut total = 0usize;
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => total += n,
                    Err(e) => panic!("read: {e}"),
                }
            }
            println!("sink bytes={total}");
        }
        (Some("send"), Some(addr)) => {
            let socket = std::net::TcpStream::connect(addr).expect("connect");
            let mut fds = [0; 2];
            // SAFETY: `fds` has room for the two descriptors.
            check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } as isize, "pipe2");
            // SAFETY: fcntl on the pipe just created.
            unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, PIPE_BYTES) };
            let (start, cpu0) = (Instant::now(), cpu_seconds());
            let mut total = 0usize;
            for path in &args[3..] {
                let file = std::fs::File::open(path).expect("open");
                let len = file.metadata().expect("stat").len() as usize;
                let mut offset: libc::loff_t = 0;
                while (offset as usize) < len {
                    let step = (len - offset as usize).min(PIPE_BYTES as usize);
                    // SAFETY: splice between descriptors this process owns.
                    let filled = check(
                        unsafe { libc::splice(file.as_raw_fd(), &mut offset, fds[1], std::ptr::null_mut(), step, 0) },
                        "splice file",
                    );
                    let mut drained = 0;
                    while drained < filled {
                        drained += check(
                            // SAFETY: as above.
                            unsafe {
                                libc::splice(
                                    fds[0],
                                    std::ptr::null_mut(),
                                    socket.as_raw_fd(),
                                    std::ptr::null_mut(),
                                    filled - drained,
                                    0,
                                )
                            },
                            "splice socket",
                        );
                    }
                    total += filled;
                }
                // SAFETY: advice on an open file.
                unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, len as libc::off_t, libc::POSIX_FADV_DONTNEED) };
            }
            let (secs, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
            println!(
                "mode=splice bytes={total} seconds={secs:.3} MBps={:.1} cpu_s={cpu:.3} cpu_s_per_GB={:.3}",
                total as f64 / secs / 1e6,
                cpu / (total as f64 / 1e9)
            );
        }
        _ => {
            eprintln!("usage: splice-loop sink ADDR | splice-loop send ADDR FILE...");
            std::process::exit(2);
        }
    }
}
