use std::process::ExitCode;

fn main() -> ExitCode {
    tune_allocator();
    portcullis::cli::run()
}

/// Sets three parameters of glibc's allocator, unless the environment configures it
/// (`GLIBC_TUNABLES` or a `MALLOC_*` variable):
///
/// - At most two arenas. By default glibc hands threads up to eight arenas per core, and
///   memory freed in one arena stays mapped in it. With a SQLite worker thread per pooled
///   connection, that free space was about a quarter of the server's resident memory.
/// - A fixed threshold of 1 MiB above which blocks are mapped on their own and returned to
///   the system when freed. glibc otherwise raises the threshold after the first such block
///   is freed, so each 19 MiB buffer of an argon2 password check then stayed in its arena.
/// - A trim threshold of 8 MiB. Fixing the mmap threshold also fixes the trim threshold at
///   its default of 128 KiB. Returning memory to the system that often cost 5 to 10 % of the
///   CPU of a registration or code exchange in the benchmark harness.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    let configured = std::env::vars_os().any(|(name, _)| {
        let name = name.to_string_lossy();
        name == "GLIBC_TUNABLES" || name.starts_with("MALLOC_")
    });
    if configured {
        return;
    }
    // SAFETY: mallopt only sets parameters of glibc's allocator, and it runs before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}
