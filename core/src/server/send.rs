//! Writing a response: its 4-byte size and every chunk in memory (headers, cached batches as
//! the log's `Bytes`) in one vectored `sendmsg`, without copying the chunks together. The call
//! never waits (`MSG_DONTWAIT`): what the socket buffer cannot take now is written through
//! glommio's stream, which waits for room on the shard's ring (under the connection's write
//! timeout), and the rest goes out with `sendmsg` again. A file range (a cold read of verified
//! segment data) goes from the file to the socket on the shard's splice ring once everything
//! before it is sent; the chunks after it follow the same way. One response is written at a
//! time per connection, so the two rings' writes never interleave.

use std::io;
use std::os::fd::RawFd;

use futures_lite::io::AsyncWriteExt;
use ringtail_net::Chunk;

use crate::runtime::splice::Splicer;

/// At most this many pieces go to one `sendmsg` (Linux's `IOV_MAX`).
const IOVECS_PER_CALL_MAX: usize = 1024;

/// The pieces of one response still to be sent: which piece, and how far into it.
pub(crate) struct Pieces<'a> {
    pieces: Vec<&'a [u8]>,
    index: usize,
    offset: usize,
}

impl<'a> Pieces<'a> {
    pub(crate) fn new(pieces: impl Iterator<Item = &'a [u8]>) -> Pieces<'a> {
        Pieces { pieces: pieces.filter(|p| !p.is_empty()).collect(), index: 0, offset: 0 }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.index >= self.pieces.len()
    }

    /// The unsent rest of the current piece.
    pub(crate) fn current(&self) -> &'a [u8] {
        self.pieces.get(self.index).map_or(&[][..], |p| &p[self.offset..])
    }

    /// The iovecs of the unsent pieces, at most `IOVECS_PER_CALL_MAX`.
    fn iovecs(&self) -> Vec<libc::iovec> {
        let mut out = Vec::with_capacity((self.pieces.len() - self.index).min(IOVECS_PER_CALL_MAX));
        for (i, p) in self.pieces[self.index..].iter().take(IOVECS_PER_CALL_MAX).enumerate() {
            let p = if i == 0 { &p[self.offset..] } else { p };
            out.push(libc::iovec { iov_base: p.as_ptr() as *mut libc::c_void, iov_len: p.len() });
        }
        out
    }

    /// Marks `n` more bytes as sent.
    pub(crate) fn advance(&mut self, mut n: usize) {
        while n > 0 && self.index < self.pieces.len() {
            let left = self.pieces[self.index].len() - self.offset;
            if n < left {
                self.offset += n;
                return;
            }
            n -= left;
            self.index += 1;
            self.offset = 0;
        }
    }
}

/// One non-blocking `sendmsg` of the pieces' next iovecs: `Ok(None)` when the socket has no
/// room now.
fn send_some(fd: RawFd, pieces: &Pieces<'_>) -> io::Result<Option<usize>> {
    let iovecs = pieces.iovecs();
    // SAFETY: the iovecs point into buffers borrowed for the call; the msghdr names no
    // address and no control data.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = iovecs.as_ptr() as *mut libc::iovec;
    header.msg_iovlen = iovecs.len() as _;
    loop {
        // SAFETY: `fd` is the connection's open socket (its stream outlives this call) and
        // `header` is valid for the call.
        let sent = unsafe { libc::sendmsg(fd, &header, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if sent >= 0 {
            return Ok(Some(sent as usize));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(None),
            _ => return Err(e),
        }
    }
}

/// What writing a response took: `sendmsg` calls (one when the socket buffer had room), and
/// file ranges sent from the file.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written {
    pub sends: usize,
    pub file_ranges: usize,
}

/// File ranges of a response being read into pipes ahead of their turn.
const FILLS_AHEAD: usize = 4;

/// Writes the response of `chunks` (size first) to the socket `fd`, which `writer` also
/// writes to; file chunks through `splicer`, the next few read into pipes while earlier
/// chunks are sent.
pub(crate) async fn write_response<W: futures_lite::AsyncWrite + Unpin>(
    fd: RawFd,
    writer: &mut W,
    chunks: &[Chunk],
    splicer: Option<&Splicer>,
) -> io::Result<Written> {
    let total: usize = chunks.iter().map(Chunk::len).sum();
    let size = (total as i32).to_be_bytes();
    let mut files = chunks.iter().filter_map(|c| match c {
        Chunk::File(f) => Some(f),
        Chunk::Mem(_) => None,
    });
    let mut fills = std::collections::VecDeque::new();
    let mut top_up = |fills: &mut std::collections::VecDeque<_>| -> io::Result<()> {
        while fills.len() < FILLS_AHEAD {
            let Some(file) = files.next() else { break };
            let splicer = splicer.ok_or_else(|| io::Error::other("a file range to send and no splice ring"))?;
            fills.push_back(splicer.fill(&file.fd, file.position, file.len)?);
        }
        Ok(())
    };
    top_up(&mut fills)?;
    let mut written = Written::default();
    let mut rest = chunks;
    let mut first = true;
    loop {
        // The chunks in memory up to the next file range, the size before the first.
        let run = rest.iter().position(|c| matches!(c, Chunk::File(_))).unwrap_or(rest.len());
        let size_piece = first.then_some(&size[..]);
        let mem = rest[..run].iter().filter_map(|c| c.as_mem().map(|b| &b[..]));
        written.sends += write_pieces(fd, writer, Pieces::new(size_piece.into_iter().chain(mem))).await?;
        first = false;
        if run == rest.len() {
            break;
        }
        let (fill, splicer) = (fills.pop_front(), splicer);
        let (Some(fill), Some(splicer)) = (fill, splicer) else {
            return Err(io::Error::other("a file range to send and no splice ring"));
        };
        splicer.send(fill, fd).await?;
        written.file_ranges += 1;
        top_up(&mut fills)?;
        rest = &rest[run + 1..];
    }
    Ok(written)
}

/// Writes every piece; returns the `sendmsg` calls made.
async fn write_pieces<W: futures_lite::AsyncWrite + Unpin>(
    fd: RawFd,
    writer: &mut W,
    mut pieces: Pieces<'_>,
) -> io::Result<usize> {
    let mut calls = 0;
    while !pieces.is_done() {
        calls += 1;
        match send_some(fd, &pieces)? {
            Some(n) => pieces.advance(n),
            None => {
                // No room: glommio's stream waits for it (on the ring, within the write
                // timeout) and writes part of the current piece; then vectored again.
                let n = writer.write(pieces.current()).await?;
                if n == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                pieces.advance(n);
            }
        }
    }
    Ok(calls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn pieces_advance_across_boundaries_and_skip_empty_chunks() {
        let size = [0u8, 0, 0, 7];
        let chunks: [&[u8]; 4] = [&size, b"abc", b"", b"defg"];
        let mut p = Pieces::new(chunks.into_iter());
        assert_eq!(p.iovecs().len(), 3);
        p.advance(2);
        assert_eq!(p.current(), &[0, 7]);
        p.advance(3);
        assert_eq!(p.current(), b"bc");
        assert_eq!(p.iovecs().len(), 2);
        assert_eq!(p.iovecs()[0].iov_len, 2);
        p.advance(2);
        assert_eq!(p.current(), b"defg");
        p.advance(4);
        assert!(p.is_done());
        assert_eq!(p.current(), b"");
    }

    #[test]
    fn one_call_takes_at_most_iov_max_pieces() {
        let size = [0u8; 4];
        let mut p = Pieces::new(std::iter::once(&size[..]).chain((0..3000).map(|_| &b"x"[..])));
        assert_eq!(p.iovecs().len(), IOVECS_PER_CALL_MAX);
        p.advance(4 + 1023);
        assert_eq!(p.iovecs().len(), IOVECS_PER_CALL_MAX);
        p.advance(3000 - 1023);
        assert!(p.is_done());
    }

    #[test]
    fn a_response_written_over_a_full_socket_arrives_whole_and_in_order() {
        // Many pieces, 8 MiB in all: more than a socket buffer holds, so the writer has to wait.
        let chunks: Vec<Chunk> = (0..4096u32)
            .map(|i| Chunk::Mem(Bytes::from(vec![(i % 251) as u8; if i % 2 == 0 { 16 } else { 4080 }])))
            .collect();
        let expected: Vec<u8> = chunks.iter().flat_map(|c| c.as_mem().unwrap().to_vec()).collect();
        let (body, written) = send_to_slow_reader(chunks, false);
        assert_eq!(body.len(), expected.len());
        assert!(body == expected, "the bytes arrived out of order");
        assert!(written.unwrap().sends > 1, "8 MiB should not fit one socket buffer");
    }

    /// A file of `len` bytes, a pattern that differs at every position.
    /// (Unlinked at once: the descriptor keeps it.)
    fn pattern_file(len: usize) -> (std::fs::File, Vec<u8>) {
        use std::io::Write;
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("ringtail-send-test-{}-{n}", std::process::id()));
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
        std::fs::File::create(&path).unwrap().write_all(&data).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        (file, data)
    }

    fn file_chunk(file: &std::fs::File, position: u64, len: usize) -> Chunk {
        let fd = std::sync::Arc::new(std::os::fd::OwnedFd::from(file.try_clone().unwrap()));
        Chunk::File(ringtail_net::FileChunk { fd, position, len, hold: None })
    }

    /// Writes `chunks` as one response on a glommio executor (with a splice ring when
    /// `splice`) to a reader that starts late; returns what it read after the size.
    fn send_to_slow_reader(chunks: Vec<Chunk>, splice: bool) -> (Vec<u8>, io::Result<Written>) {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let reader = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(100));
            let mut size = [0u8; 4];
            s.read_exact(&mut size).unwrap();
            let mut body = Vec::new();
            s.read_to_end(&mut body).unwrap();
            assert!(body.len() <= i32::from_be_bytes(size) as usize);
            body
        });
        let written = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(move || async move {
                let splicer = splice.then(|| crate::runtime::splice::Splicer::start(0).unwrap());
                let stream = glommio::net::TcpStream::connect(address).await.unwrap();
                let fd = stream.as_raw_fd();
                let (_r, mut w) = futures_lite::io::split(stream);
                let written = write_response(fd, &mut w, &chunks, splicer.as_deref()).await;
                drop(w);
                written
            })
            .unwrap()
            .join()
            .unwrap();
        (reader.join().unwrap(), written)
    }

    #[test]
    fn file_ranges_between_chunks_in_memory_arrive_in_place_and_whole() {
        // Ranges larger than a pipe and than the socket buffer, one unaligned, between headers.
        let (file, data) = pattern_file(9 << 20);
        let chunks = vec![
            Chunk::Mem(Bytes::from_static(b"head")),
            file_chunk(&file, 4097, 3 << 20),
            Chunk::Mem(Bytes::from_static(b"middle")),
            Chunk::Mem(Bytes::from_static(b"-more")),
            file_chunk(&file, 0, 5 << 20),
            file_chunk(&file, (9 << 20) - 10, 10),
            Chunk::Mem(Bytes::from_static(b"tail")),
        ];
        let mut expected = b"head".to_vec();
        expected.extend_from_slice(&data[4097..4097 + (3 << 20)]);
        expected.extend_from_slice(b"middle-more");
        expected.extend_from_slice(&data[..5 << 20]);
        expected.extend_from_slice(&data[(9 << 20) - 10..]);
        expected.extend_from_slice(b"tail");
        let (body, written) = send_to_slow_reader(chunks, true);
        assert_eq!(body.len(), expected.len());
        assert!(body == expected, "the bytes arrived out of order or changed");
        assert_eq!(written.unwrap().file_ranges, 3);
    }

    #[test]
    fn a_range_past_the_end_of_its_file_fails_the_response() {
        let (file, _) = pattern_file(100_000);
        let chunks = vec![Chunk::Mem(Bytes::from_static(b"head")), file_chunk(&file, 50_000, 80_000)];
        let (body, written) = send_to_slow_reader(chunks, true);
        let e = written.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        assert!(body.len() < 4 + 80_000);
    }
}
