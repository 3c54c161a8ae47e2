//! The tunnel's multiplexer over a real WebSocket on 127.0.0.1: many streams at once with no
//! cross-talk, and per-stream flow control (a stream nobody reads does not stall the others).

mod support;

use std::time::Duration;

use support::STEP;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
use tokio_websockets::{ClientBuilder, Limits, ServerBuilder};
use wsgate::{
    io::ws::{MAX_MESSAGE_BYTES, WsIo},
    session::{self, SessionHandle, TunnelStream},
};
use yamux::Mode;

/// Echoes every stream's bytes back.
fn echo(stream: TunnelStream) {
    tokio::spawn(async move {
        let (mut read, mut write) = tokio::io::split(stream);
        let _ = tokio::io::copy(&mut read, &mut write).await;
        let _ = write.shutdown().await;
    });
}

/// A server session that runs `on_inbound` on each stream, and a client session to it.
async fn pair(on_inbound: fn(TunnelStream)) -> SessionHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = Limits::default().max_payload_len(Some(MAX_MESSAGE_BYTES));
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = ServerBuilder::new()
            .limits(limits)
            .accept(tcp)
            .await
            .unwrap()
            .1;
        let (_handle, task) =
            session::spawn(WsIo::new(ws), Mode::Server, Default::default(), on_inbound);
        let _ = task.await;
    });
    let (ws, _) = ClientBuilder::new()
        .uri(&format!("ws://{addr}/"))
        .unwrap()
        .limits(limits)
        .connect()
        .await
        .unwrap();
    let (handle, _task) = session::spawn(WsIo::new(ws), Mode::Client, Default::default(), |_| {});
    handle
}

/// Sends `data` on a new stream and reads back as many bytes.
async fn round_trip(session: &SessionHandle, data: Vec<u8>) -> Vec<u8> {
    let stream = session.open().await.unwrap();
    let (mut read, mut write) = tokio::io::split(stream);
    let sending = tokio::spawn(async move {
        write.write_all(&data).await.unwrap();
        write.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    read.read_to_end(&mut back).await.unwrap();
    sending.await.unwrap();
    back
}

#[tokio::test]
async fn two_hundred_streams_echo_their_own_bytes() {
    let session = pair(echo).await;
    let mut streams = Vec::new();
    for n in 0..200u32 {
        let session = session.clone();
        let data: Vec<u8> = (0..256 * 1024u32).map(|i| (i * 7 + n) as u8).collect();
        streams.push(tokio::spawn(async move {
            let stream = session.open().await.unwrap();
            let (mut read, mut write) = tokio::io::split(stream);
            let expected = data.clone();
            let writer = tokio::spawn(async move {
                write.write_all(&data).await.unwrap();
                write.shutdown().await.unwrap();
            });
            let mut back = Vec::new();
            read.read_to_end(&mut back).await.unwrap();
            writer.await.unwrap();
            assert!(back == expected, "stream {n} got other bytes");
        }));
    }
    for stream in streams {
        tokio::time::timeout(STEP, stream).await.unwrap().unwrap();
    }
}

/// The first byte of each stream says what to do: `S` holds the stream and never reads it
/// again; anything else is echoed (itself included).
fn mixed(stream: TunnelStream) {
    tokio::spawn(async move {
        let (mut read, mut write) = tokio::io::split(stream);
        let mut first = [0u8; 1];
        if read.read_exact(&mut first).await.is_err() || first[0] == b'S' {
            let _held = (read, write);
            return std::future::pending::<()>().await;
        }
        write.write_all(&first).await.unwrap();
        let _ = tokio::io::copy(&mut read, &mut write).await;
        let _ = write.shutdown().await;
    });
}

#[tokio::test]
async fn a_stream_nobody_reads_does_not_stall_the_others() {
    let session = pair(mixed).await;
    let mut stuck = session.open().await.unwrap();
    stuck.write_all(b"S").await.unwrap();
    // Its window (256 KiB) fills; the write then waits, and goes on waiting.
    let filled = tokio::time::timeout(Duration::from_millis(500), async {
        stuck.write_all(&vec![0u8; 4 << 20]).await
    })
    .await;
    assert!(filled.is_err(), "4 MiB went into a stream nobody reads");
    // Other streams of the same session still flow, both ways.
    for _ in 0..4 {
        let mut data = vec![b'E'];
        data.extend(std::iter::repeat_n(7u8, 1 << 20));
        let back = tokio::time::timeout(STEP, round_trip(&session, data.clone()))
            .await
            .expect("a stream stalled behind the stuck one");
        assert!(back == data);
    }
}
