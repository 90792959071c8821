//! A DNS server on loopback UDP for `resolver` tests: A records from a
//! table the test changes while the proxies run, NXDOMAIN for the rest.
//! The wire format (RFC 1035) is small enough to write here; a real
//! client (nginx's resolver, hickory) is on the other side.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;

/// The server; it stops when dropped.
pub struct Dns {
    pub addr: SocketAddr,
    names: Arc<Mutex<HashMap<String, Ipv4Addr>>>,
    /// Queries seen, as `name type`.
    pub asked: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Dns {
    pub async fn start() -> Dns {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind dns");
        let addr = socket.local_addr().expect("addr");
        let names: Arc<Mutex<HashMap<String, Ipv4Addr>>> = Arc::default();
        let asked: Arc<Mutex<Vec<String>>> = Arc::default();
        let (table, log) = (names.clone(), asked.clone());
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                if let Some(reply) = answer(&buf[..n], &table, &log) {
                    let _ = socket.send_to(&reply, from).await;
                }
            }
        });
        Dns {
            addr,
            names,
            asked,
            task,
        }
    }

    /// `name` resolves to `ip` from now on (TTL 1 s).
    pub fn set(&self, name: &str, ip: Ipv4Addr) {
        self.names
            .lock()
            .unwrap()
            .insert(name.to_ascii_lowercase(), ip);
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The reply to one query: the question copied, an A record when the name
/// is known and an A is asked, an empty answer for other types of a known
/// name, NXDOMAIN otherwise.
fn answer(
    q: &[u8],
    names: &Mutex<HashMap<String, Ipv4Addr>>,
    asked: &Mutex<Vec<String>>,
) -> Option<Vec<u8>> {
    if q.len() < 12 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    // The question's name, label by label.
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*q.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let question_end = i + 4;
    let name = labels.join(".");
    asked.lock().unwrap().push(format!("{name} {qtype}"));
    let ip = names.lock().unwrap().get(&name).copied();
    let mut r = Vec::with_capacity(question_end + 16);
    r.extend_from_slice(&q[0..2]);
    // Response, recursion desired as asked, recursion available; rcode 3
    // (NXDOMAIN) for an unknown name.
    let rcode = if ip.is_some() { 0 } else { 3 };
    r.extend_from_slice(&[0x80 | (q[2] & 0x01), 0x80 | rcode]);
    let answers: u16 = if ip.is_some() && qtype == 1 { 1 } else { 0 };
    r.extend_from_slice(&[0, 1]);
    r.extend_from_slice(&answers.to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(q.get(12..question_end)?);
    if let (Some(ip), 1) = (ip, answers) {
        // A pointer to the question's name, A, IN, TTL 1, four bytes.
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4]);
        r.extend_from_slice(&ip.octets());
    }
    Some(r)
}
