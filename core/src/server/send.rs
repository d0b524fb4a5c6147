//! Writing a response: its 4-byte size and every chunk (headers, cached batches as the log's
//! `Bytes`) in one vectored `sendmsg`, without copying the chunks together. The socket is
//! non-blocking (glommio's), so the call never waits: what the socket buffer cannot take now is
//! written through glommio's stream, which waits for room on the shard's ring (under the
//! connection's write timeout), and the rest goes out with `sendmsg` again.

use std::io;
use std::os::fd::RawFd;

use bytes::Bytes;
use futures_lite::io::AsyncWriteExt;

/// At most this many pieces go to one `sendmsg` (Linux's `IOV_MAX`).
const IOVECS_PER_CALL_MAX: usize = 1024;

/// The pieces of one response still to be sent: which piece, and how far into it.
pub(crate) struct Pieces<'a> {
    pieces: Vec<&'a [u8]>,
    index: usize,
    offset: usize,
}

impl<'a> Pieces<'a> {
    pub(crate) fn new(size: &'a [u8], chunks: &'a [Bytes]) -> Pieces<'a> {
        let mut pieces = Vec::with_capacity(chunks.len() + 1);
        pieces.push(size);
        pieces.extend(chunks.iter().filter(|c| !c.is_empty()).map(|c| &c[..]));
        Pieces { pieces, index: 0, offset: 0 }
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

/// Writes the response of `chunks` (size first) to the socket `fd`, which `writer` also
/// writes to. Returns the `sendmsg` calls made (one when the socket buffer had room).
pub(crate) async fn write_response<W: futures_lite::AsyncWrite + Unpin>(
    fd: RawFd,
    writer: &mut W,
    chunks: &[Bytes],
) -> io::Result<usize> {
    let total: usize = chunks.iter().map(Bytes::len).sum();
    let size = (total as i32).to_be_bytes();
    let mut pieces = Pieces::new(&size, chunks);
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

    #[test]
    fn pieces_advance_across_boundaries_and_skip_empty_chunks() {
        let size = [0u8, 0, 0, 7];
        let chunks = [Bytes::from_static(b"abc"), Bytes::new(), Bytes::from_static(b"defg")];
        let mut p = Pieces::new(&size, &chunks);
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
        let chunks: Vec<Bytes> = (0..3000).map(|_| Bytes::from_static(b"x")).collect();
        let mut p = Pieces::new(&size, &chunks);
        assert_eq!(p.iovecs().len(), IOVECS_PER_CALL_MAX);
        p.advance(4 + 1023);
        assert_eq!(p.iovecs().len(), IOVECS_PER_CALL_MAX);
        p.advance(3000 - 1023);
        assert!(p.is_done());
    }

    #[test]
    fn a_response_written_over_a_full_socket_arrives_whole_and_in_order() {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        // Many pieces, 8 MiB in all: more than a socket buffer holds, so the writer has to wait.
        let chunks: Vec<Bytes> =
            (0..4096u32).map(|i| Bytes::from(vec![(i % 251) as u8; if i % 2 == 0 { 16 } else { 4080 }])).collect();
        let expected: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let reader = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(100));
            let mut size = [0u8; 4];
            s.read_exact(&mut size).unwrap();
            let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
            s.read_exact(&mut body).unwrap();
            body
        });
        let chunks2 = chunks.clone();
        let calls = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(move || async move {
                let stream = glommio::net::TcpStream::connect(address).await.unwrap();
                let fd = stream.as_raw_fd();
                let (_r, mut w) = futures_lite::io::split(stream);
                write_response(fd, &mut w, &chunks2).await.unwrap()
            })
            .unwrap()
            .join()
            .unwrap();
        let body = reader.join().unwrap();
        assert_eq!(body.len(), expected.len());
        assert!(body == expected, "the bytes arrived out of order");
        assert!(calls > 1, "8 MiB should not fit one socket buffer");
    }
}
