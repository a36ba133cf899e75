//! Entering a network namespace from a thread: tests and tools run a
//! device or a peer inside a namespace without a helper process.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;

/// Move the calling thread into the named network namespace
/// (`/var/run/netns/NAME`, as made by `ip netns add`). Other threads stay
/// where they are.
pub fn enter(name: &str) -> io::Result<()> {
    let f = File::open(format!("/var/run/netns/{name}"))?;
    rustix::thread::move_into_link_name_space(
        f.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )?;
    Ok(())
}

/// Run `f` on a new thread inside namespace `name` and return its result.
pub fn run_in<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let name = name.to_string();
    std::thread::spawn(move || -> io::Result<T> {
        enter(&name)?;
        Ok(f())
    })
    .join()
    .map_err(|_| io::Error::other("thread in namespace panicked"))?
}
