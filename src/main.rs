use std::process::ExitCode;

fn main() -> ExitCode {
    tune_allocator();
    portcullis::cli::run()
}

/// Sets two parameters of glibc's allocator, unless `MALLOC_ARENA_MAX` or `GLIBC_TUNABLES`
/// configures it from outside:
///
/// - At most two arenas. By default glibc hands threads up to eight arenas per core, and
///   memory freed in one arena stays mapped in it. With a SQLite worker thread per pooled
///   connection, that free space was about a quarter of the server's resident memory.
/// - A fixed threshold of 1 MiB above which blocks are mapped on their own and returned to
///   the system when freed. glibc otherwise raises the threshold after the first such block
///   is freed, so each 19 MiB buffer of an argon2 password check then stayed in its arena.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some()
        || std::env::var_os("GLIBC_TUNABLES").is_some()
    {
        return;
    }
    // SAFETY: mallopt only sets parameters of glibc's allocator, and it runs before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}
