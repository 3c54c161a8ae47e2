//! The message budget: what frames are charged and when, headers cut by reads, and the 1013
//! close a refused frame becomes.

use super::{frames::PING_COST, *};

/// A masked client frame header (mask key zero) for `payload` bytes.
fn header(fin: bool, opcode: u8, payload: usize) -> Vec<u8> {
    let mut out = vec![u8::from(fin) << 7 | opcode];
    match payload {
        0..=125 => out.push(0x80 | payload as u8),
        126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(payload as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(payload as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out
}

fn frame(fin: bool, opcode: u8, payload: usize) -> Vec<u8> {
    let mut out = header(fin, opcode, payload);
    out.resize(out.len() + payload, b'x');
    out
}

#[test]
fn fragments_are_charged_as_their_buffers_until_the_reader_returns() {
    let budget = Budget::new("test", 1 << 20);
    let mut tracker = FrameTracker::new(Sender::Client, &budget, 1 << 20);
    assert_eq!(tracker.scan(&frame(false, 0x2, 1000)), Scan::Pass);
    assert_eq!(
        budget.used(),
        1000 + 2000,
        "the read buffer, and twice what is gathered"
    );
    assert_eq!(
        tracker.scan(&frame(true, 0x9, 5)),
        Scan::Pass,
        "a ping between"
    );
    assert_eq!(tracker.scan(&frame(false, 0x0, 3000)), Scan::Pass);
    assert_eq!(budget.used(), 3000 + 8000);
    assert_eq!(tracker.scan(&frame(true, 0x0, 10)), Scan::Pass);
    assert_eq!(budget.used(), 3000 + 8020, "complete, not yet passed on");
    tracker.delivered.release(); // the reader came back for more
    assert_eq!(
        budget.used(),
        3000,
        "the read buffer stays as large as its largest frame"
    );
    assert_eq!(tracker.scan(&frame(true, 0x1, 100)), Scan::Pass);
    assert_eq!(
        budget.used(),
        3000,
        "a message in one frame lives in the read buffer"
    );
    drop(tracker);
    assert_eq!(budget.used(), 0);
}

#[test]
fn a_declared_frame_is_charged_before_its_payload_and_refused_past_the_budget() {
    let budget = Budget::new("test", 10_000);
    let mut tracker = FrameTracker::new(Sender::Client, &budget, 1 << 20);
    assert_eq!(tracker.scan(&header(true, 0x2, 9000)), Scan::Pass);
    assert_eq!(budget.used(), 9000, "charged at the header");
    let mut other = FrameTracker::new(Sender::Client, &budget, 1 << 20);
    let mut bytes = frame(true, 0x1, 10);
    bytes.extend(header(false, 0x2, 2000));
    assert_eq!(other.scan(&bytes), Scan::RefuseFrom(16));
    drop(tracker);
    drop(other);
    assert_eq!(budget.used(), 0, "a connection's end gives its charge back");
}

#[test]
fn headers_cut_by_reads_are_held_back() {
    let budget = Budget::new("test", 1 << 20);
    let mut tracker = FrameTracker::new(Sender::Client, &budget, 1 << 20);
    let bytes = frame(true, 0x2, 300);
    assert_eq!(tracker.scan(&bytes[..3]), Scan::HoldFrom(0));
    assert_eq!(tracker.scan(&bytes[..100]), Scan::Pass);
    assert_eq!(budget.used(), 300);
    assert_eq!(tracker.scan(&bytes[100..]), Scan::Pass);
    tracker.delivered.release();
    assert_eq!(budget.used(), 300, "the read buffer");
}

#[test]
fn frames_over_the_message_cap_are_left_to_the_decoder() {
    let budget = Budget::new("test", 100);
    let mut tracker = FrameTracker::new(Sender::Client, &budget, 1000);
    assert_eq!(tracker.scan(&header(true, 0x2, 5000)), Scan::Pass);
    assert_eq!(budget.used(), 0);
}

#[test]
fn pings_while_no_write_goes_through_are_refused() {
    let budget = Budget::new("test", 100);
    let mut tracker = FrameTracker::new(Sender::Client, &budget, 1000);
    let ping = frame(true, 0x9, 125);
    let cost = PING_COST + 125;
    let allowed = MAX_UNANSWERED_PING_BYTES / cost;
    for _ in 0..allowed {
        assert_eq!(tracker.scan(&ping), Scan::Pass);
    }
    // Only what our writes carried is taken off: a slow reader cannot reset the count.
    tracker.note_write(&Poll::Ready(Ok(cost)));
    assert_eq!(tracker.scan(&ping), Scan::Pass, "one pong's worth went out");
    tracker.note_write(&Poll::Pending);
    assert_eq!(tracker.scan(&ping), Scan::RefuseFrom(0));
}

#[tokio::test]
async fn a_header_cut_at_every_byte_is_completed_and_charged() {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    let budget = Budget::new("test", 1 << 20);
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let metered = Metered::new(server, Sender::Client, &budget, 1 << 20);
    let mut ws = tokio_websockets::ServerBuilder::new().serve(metered);
    let mut bytes = frame(false, 0x2, 70_000);
    bytes.extend(frame(true, 0x0, 70_000));
    let writer = tokio::spawn(async move {
        // One byte a write: every header arrives cut.
        for byte in bytes {
            client.write_all(&[byte]).await.unwrap();
        }
        client
    });
    let message = ws.next().await.expect("a message").expect("not an error");
    assert_eq!(message.as_payload().len(), 140_000);
    assert_eq!(
        budget.used(),
        70_000 + 280_000,
        "the read buffer, and twice the 140,000 bytes gathered"
    );
    let _client = writer.await.unwrap();
    drop(ws);
    assert_eq!(budget.used(), 0);
}

#[tokio::test]
async fn the_decoder_reads_a_1013_close_in_place_of_a_refused_frame() {
    use futures_util::StreamExt;
    let budget = Budget::new("test", 100);
    let (mut client, server) = tokio::io::duplex(64);
    let metered = Metered::new(server, Sender::Client, &budget, 1 << 20);
    let mut ws = tokio_websockets::ServerBuilder::new().serve(metered);
    let mut bytes = frame(false, 0x2, 50);
    bytes.extend(frame(false, 0x0, 80));
    let writer = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // The rest of the refused frame is never read: the write ends with the stream.
        let _ = client.write_all(&bytes).await;
        let mut answer = Vec::new();
        let _ = client.read_to_end(&mut answer).await;
        answer
    });
    let message = ws.next().await.expect("a message").expect("not an error");
    let (code, reason) = message.as_close().expect("a close");
    assert_eq!((u16::from(code), reason), (1013, BUDGET_CLOSE_REASON));
    assert!(ws.next().await.is_none());
    drop(ws);
    let answer = writer.await.unwrap();
    // The decoder answers the close with its code: 1013 = 0x03f5.
    assert_eq!((answer[0], &answer[2..4]), (0x88, &[0x03, 0xf5][..]));
    assert_eq!(budget.used(), 0);
}
