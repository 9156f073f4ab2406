//! The few message sequences of PostgreSQL's frontend/backend protocol that drivers send but
//! tokio-postgres cannot: several Executes before one Sync (a pipeline, one implicit
//! transaction), and the fast-path function call (`PQfn`). Blocking I/O over the test
//! server's TCP port or Unix socket, trust authentication only (the test clusters use it).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use tokio_postgres::Config;

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A raw protocol connection, authenticated and idle.
pub struct Wire {
    stream: Box<dyn Stream>,
    pid: i32,
}

/// What the server answered to one Execute (or fast-path call) of a pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The first column of each row, as text (`None` for NULL).
    Rows(Vec<Option<String>>),
    /// The SQLSTATE and message of an ErrorResponse.
    Error(String, String),
}

impl Wire {
    /// Connects to the database of `config` as its user.
    pub fn connect(config: &Config) -> Wire {
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let stream: Box<dyn Stream> = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Unix(dir)) => Box::new(
                UnixStream::connect(dir.join(format!(".s.PGSQL.{port}")))
                    .expect("connect to the test server's socket"),
            ),
            Some(tokio_postgres::config::Host::Tcp(host)) => Box::new(
                TcpStream::connect((host.as_str(), port)).expect("connect to the test server"),
            ),
            None => Box::new(
                TcpStream::connect(("127.0.0.1", port)).expect("connect to the test server"),
            ),
        };
        let mut wire = Wire { stream, pid: 0 };
        let mut body = 196608i32.to_be_bytes().to_vec(); // protocol 3.0
        for (key, value) in [
            ("user", config.get_user().unwrap_or("postgres")),
            ("database", config.get_dbname().unwrap_or("postgres")),
        ] {
            cstr(&mut body, key);
            cstr(&mut body, value);
        }
        body.push(0);
        let mut startup = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        startup.extend(body);
        wire.stream.write_all(&startup).expect("send startup");
        loop {
            let (kind, payload) = wire.read();
            match kind {
                b'R' => assert_eq!(
                    &payload[..4],
                    &[0, 0, 0, 0],
                    "the test server asks for a password"
                ),
                b'K' => wire.pid = i32::from_be_bytes(payload[..4].try_into().unwrap()),
                b'Z' => return wire,
                b'E' => panic!("connection refused: {}", error_text(&payload).1),
                _ => {}
            }
        }
    }

    /// The backend's process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends Parse/Bind/Execute for each statement (no parameters), then one Sync, and reads
    /// every answer up to ReadyForQuery, in order: one per completed Execute, then an error if
    /// one came (PostgreSQL skips the rest of the pipeline after an error, and an error of the
    /// commit at Sync comes after every Execute's answer).
    pub fn pipeline(&mut self, statements: &[&str]) -> Vec<Answer> {
        let mut out = Vec::new();
        for sql in statements {
            let mut parse = vec![0u8]; // unnamed statement
            cstr(&mut parse, sql);
            parse.extend(0i16.to_be_bytes());
            message(&mut out, b'P', &parse);
            let mut bind = vec![0u8, 0u8]; // unnamed portal, unnamed statement
            bind.extend(0i16.to_be_bytes()); // parameter formats
            bind.extend(0i16.to_be_bytes()); // parameters
            bind.extend(0i16.to_be_bytes()); // result formats: all text
            message(&mut out, b'B', &bind);
            let mut execute = vec![0u8];
            execute.extend(0i32.to_be_bytes());
            message(&mut out, b'E', &execute);
        }
        message(&mut out, b'S', &[]);
        self.stream.write_all(&out).expect("send pipeline");
        self.answers()
    }

    /// A fast-path call of the function with this oid, text arguments, text result.
    pub fn call(&mut self, function: u32, args: &[&str]) -> Answer {
        let mut body = function.to_be_bytes().to_vec();
        body.extend(1i16.to_be_bytes());
        body.extend(0i16.to_be_bytes()); // every argument in text format
        body.extend((args.len() as i16).to_be_bytes());
        for arg in args {
            body.extend((arg.len() as i32).to_be_bytes());
            body.extend(arg.as_bytes());
        }
        body.extend(0i16.to_be_bytes()); // text result
        let mut out = Vec::new();
        message(&mut out, b'F', &body);
        self.stream.write_all(&out).expect("send function call");
        let mut answer = Answer::Rows(Vec::new());
        loop {
            let (kind, payload) = self.read();
            match kind {
                b'V' => {
                    let len = i32::from_be_bytes(payload[..4].try_into().unwrap());
                    answer = Answer::Rows(vec![(len >= 0).then(|| {
                        String::from_utf8_lossy(&payload[4..4 + len as usize]).into_owned()
                    })]);
                }
                b'E' => {
                    let (code, text) = error_text(&payload);
                    answer = Answer::Error(code, text);
                }
                b'Z' => return answer,
                _ => {}
            }
        }
    }

    fn answers(&mut self) -> Vec<Answer> {
        let mut answers = Vec::new();
        let mut rows = Vec::new();
        loop {
            let (kind, payload) = self.read();
            match kind {
                b'D' => {
                    let len = i32::from_be_bytes(payload[2..6].try_into().unwrap());
                    rows.push((len >= 0).then(|| {
                        String::from_utf8_lossy(&payload[6..6 + len as usize]).into_owned()
                    }));
                }
                b'C' => answers.push(Answer::Rows(std::mem::take(&mut rows))),
                b'E' => {
                    let (code, text) = error_text(&payload);
                    answers.push(Answer::Error(code, text));
                }
                b'Z' => return answers,
                _ => {}
            }
        }
    }

    fn read(&mut self) -> (u8, Vec<u8>) {
        let mut head = [0u8; 5];
        self.stream.read_exact(&mut head).expect("read a message");
        let len = i32::from_be_bytes(head[1..5].try_into().unwrap()) as usize - 4;
        let mut payload = vec![0u8; len];
        self.stream
            .read_exact(&mut payload)
            .expect("read a message");
        (head[0], payload)
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        let _ = self.stream.write_all(&[b'X', 0, 0, 0, 4]);
    }
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend(s.as_bytes());
    out.push(0);
}

fn message(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    out.push(kind);
    out.extend(((body.len() + 4) as i32).to_be_bytes());
    out.extend(body);
}

/// SQLSTATE and message of an ErrorResponse.
fn error_text(payload: &[u8]) -> (String, String) {
    let (mut code, mut text) = (String::new(), String::new());
    for field in payload.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let value = String::from_utf8_lossy(&field[1..]).into_owned();
        match field[0] {
            b'C' => code = value,
            b'M' => text = value,
            _ => {}
        }
    }
    (code, text)
}
