//! Heap allocations per request on the hot path: a Redis-door GET and SET
//! of a 1 KiB value, and a memcached text get and set, counted by a
//! counting global allocator around a real server (in this process, on a
//! loopback port, the embedded store in memory) driven by a client that
//! allocates nothing while it is counted.
//! A GET allocates nothing and a SET only the stored copy of its value
//! (arguments are slices of the read buffer); an allocation added to the
//! path fails here (BENCHMARKS.md, "Instructions per request").

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};

use sessiond_server::{Config, Doors, Listen, Server};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only a
// counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Requests counted per case.
const N: u64 = 2_000;

/// Sends `request` `n` times, one at a time, reading each reply (of
/// `reply_len` bytes) whole into a buffer made before.
fn round_trips(conn: &mut TcpStream, request: &[u8], reply_len: usize, n: u64, buf: &mut [u8]) {
    for _ in 0..n {
        conn.write_all(request).unwrap();
        let mut got = 0;
        while got < reply_len {
            let k = conn.read(&mut buf[got..reply_len]).unwrap();
            assert!(k > 0, "the server closed the connection");
            got += k;
        }
    }
}

/// Allocations per request of `n` round trips.
fn per_request(conn: &mut TcpStream, request: &[u8], reply_len: usize, buf: &mut [u8]) -> f64 {
    // Warm up: buffers grown, the session in place.
    round_trips(conn, request, reply_len, 200, buf);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    round_trips(conn, request, reply_len, N, buf);
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    (after - before) as f64 / N as f64
}

#[test]
fn allocations_per_get_and_set_stay_within_their_ceilings() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let mut config = Config {
        storage: sessiond_server::Storage::Memory,
        listen_line: Listen::Off,
        listen_http: Listen::Off,
        threads: 1,
        ..Config::default()
    };
    config.listen_resp = Listen::On(addr);
    let mc_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mc_addr = mc_listener.local_addr().unwrap();
    mc_listener.set_nonblocking(true).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let doors = Doors {
                resp: tokio::net::TcpListener::from_std(listener).unwrap(),
                line: None,
                memcache: Some(tokio::net::TcpListener::from_std(mc_listener).unwrap()),
                http: None,
            };
            let server = Server::start(config).await.unwrap();
            server
                .run_doors(doors, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
    });

    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_nodelay(true).unwrap();
    let value = vec![b'v'; 1024];
    let mut set = b"*3\r\n$3\r\nSET\r\n$16\r\nkey:000000000042\r\n$1024\r\n".to_vec();
    set.extend_from_slice(&value);
    set.extend_from_slice(b"\r\n");
    let get = b"*2\r\n$3\r\nGET\r\n$16\r\nkey:000000000042\r\n";
    let mut buf = vec![0u8; 4096];

    let sets = per_request(&mut conn, &set, b"+OK\r\n".len(), &mut buf);
    let gets = per_request(&mut conn, get, b"$1024\r\n".len() + 1024 + 2, &mut buf);
    assert_eq!(&buf[..7], b"$1024\r\n");
    eprintln!("allocations per request: SET {sets:.2}, GET {gets:.2}");

    // None per GET; one per SET, the stored copy of the value. A little
    // room for the server's own upkeep running meanwhile (a few
    // allocations in the 2,000 requests).
    assert!(sets <= 1.01, "SET: {sets:.2} allocations per request");
    assert!(gets <= 0.01, "GET: {gets:.2} allocations per request");

    // The memcached text door: the same ceilings.
    let mut mc = TcpStream::connect(mc_addr).unwrap();
    mc.set_nodelay(true).unwrap();
    let mut set = b"set key:000000000042 0 0 1024\r\n".to_vec();
    set.extend_from_slice(&value);
    set.extend_from_slice(b"\r\n");
    let get = b"get key:000000000042\r\n";
    let hit = b"VALUE key:000000000042 0 1024\r\n".len() + 1024 + b"\r\nEND\r\n".len();
    let mc_sets = per_request(&mut mc, &set, b"STORED\r\n".len(), &mut buf);
    let mc_gets = per_request(&mut mc, get, hit, &mut buf);
    assert_eq!(&buf[..6], b"VALUE ");
    eprintln!("allocations per memcached request: set {mc_sets:.2}, get {mc_gets:.2}");
    assert!(
        mc_sets <= 1.01,
        "memcached set: {mc_sets:.2} allocations per request"
    );
    assert!(
        mc_gets <= 0.01,
        "memcached get: {mc_gets:.2} allocations per request"
    );

    drop(conn);
    drop(mc);
    let _ = stop.send(());
    server.join().unwrap();
}
