//! What the registry tests share: the repository's plugins, a real
//! distribution registry (Debian's `docker-registry`) on a free loopback port,
//! a token server it trusts, and a bare HTTP GET to look at it without
//! `oci-client`.
//!
//! Every process is owned by a guard that kills it when dropped, so a failing
//! test stops what it started too.

#![allow(dead_code)]

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use gateway_oci::workspace::{self, PluginSource};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The workspace root.
pub fn root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// Every plugin of `plugins/`, each with its `dist/<name>.wasm` present.
pub fn plugins() -> Vec<PluginSource> {
    let plugins = workspace::plugins(&root()).expect("the workspace's plugins");
    assert!(!plugins.is_empty(), "no plugins found under plugins/");
    for plugin in &plugins {
        assert!(
            plugin.wasm.is_file(),
            "{} is missing: run `cargo xtask build` before these tests (they package the built plugins)",
            plugin.wasm.display()
        );
    }
    plugins
}

/// How the registry authenticates.
pub enum Auth {
    /// Anyone may push and pull.
    None,
    /// HTTP basic auth against a bcrypt htpasswd file with one user.
    Htpasswd { user: String, password: String },
    /// Bearer tokens from `server`, signed with the certificate it holds.
    Token(Arc<TokenServer>),
}

/// A `docker-registry serve` process with its storage in a temp dir.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    dir: tempfile::TempDir,
}

const REGISTRY: &str = "/usr/bin/docker-registry";

/// A CA and a server certificate it signed for `127.0.0.1` and `localhost`.
pub struct Tls {
    /// The CA certificate (PEM): what clients must trust.
    pub ca_pem: String,
    certificate_pem: String,
    key_pem: String,
}

impl Tls {
    pub fn new() -> Tls {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "gateway-oci test CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let key = rcgen::KeyPair::generate().expect("server key");
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("server params");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let certificate = params.signed_by(&key, &issuer).expect("server certificate");
        Tls { ca_pem: ca.pem(), certificate_pem: certificate.pem(), key_pem: key.serialize_pem() }
    }
}

impl Registry {
    pub fn start(auth: Auth) -> Registry {
        Registry::start_with(auth, None)
    }

    /// A registry serving HTTPS with `tls`'s server certificate.
    pub fn start_with(auth: Auth, tls: Option<&Tls>) -> Registry {
        assert!(
            Path::new(REGISTRY).exists(),
            "{REGISTRY} is missing: run `cargo xtask setup` (Debian package docker-registry)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let auth = match auth {
            Auth::None => String::new(),
            Auth::Htpasswd { user, password } => {
                let hash =
                    bcrypt::hash_with_result(&password, 4).expect("bcrypt").format_for_version(bcrypt::Version::TwoY);
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, format!("{user}:{hash}\n")).expect("write htpasswd");
                format!("auth:\n  htpasswd:\n    realm: test-registry\n    path: {}\n", file.display())
            }
            Auth::Token(server) => {
                let bundle = dir.path().join("token-ca.pem");
                std::fs::write(&bundle, &server.certificate_pem).expect("write the token certificate");
                format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    server.realm(),
                    TokenServer::SERVICE,
                    TokenServer::ISSUER,
                    bundle.display()
                )
            }
        };
        let tls = match tls {
            None => String::new(),
            Some(tls) => {
                let (certificate, key) = (dir.path().join("server.pem"), dir.path().join("server-key.pem"));
                std::fs::write(&certificate, &tls.certificate_pem).expect("write the server certificate");
                std::fs::write(&key, &tls.key_pem).expect("write the server key");
                format!("  tls:\n    certificate: {}\n    key: {}\n", certificate.display(), key.display())
            }
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    \
             rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n  secret: test-secret\n{tls}{auth}",
            dir.path().join("data").display()
        );
        let config_file = dir.path().join("config.yml");
        std::fs::write(&config_file, config).expect("write config.yml");
        let log_file = dir.path().join("registry.log");
        let log = std::fs::File::create(&log_file).expect("registry log");
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&config_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        // From here on the guard stops the process, also if start-up fails.
        let mut registry = Registry { child, addr: String::new(), dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&log_file).unwrap_or_default();
            // `listening on 127.0.0.1:<port>` (`, tls` follows with TLS)
            if let Some(addr) = text.split("listening on ").nth(1).and_then(|rest| rest.split(['"', ',']).next()) {
                registry.addr = addr.trim().to_string();
                break;
            }
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!("docker-registry exited ({status}) at start-up:\n{text}");
            }
            assert!(Instant::now() < deadline, "docker-registry did not start within 20 s:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(registry.addr.starts_with("127.0.0.1:"), "unexpected address {}", registry.addr);
        registry
    }

    /// The registry's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A token server as `auth: token` registries expect (the Docker token
/// protocol): `GET /token?service=..&scope=repository:<name>:<actions>` with
/// basic auth answers `{"token": <JWT>}`, an ES256 JWT whose `x5c` header
/// carries the certificate the registry trusts. Credentials other than its
/// one user get 401.
pub struct TokenServer {
    server: Arc<tiny_http::Server>,
    thread: Mutex<Option<JoinHandle<()>>>,
    port: u16,
    /// PEM of the self-signed certificate (the registry's `rootcertbundle`).
    pub certificate_pem: String,
    /// `user scope` of every token request that carried valid credentials.
    pub granted: Arc<Mutex<Vec<String>>>,
    /// Requests refused for their credentials.
    pub refused: Arc<Mutex<usize>>,
}

impl TokenServer {
    pub const SERVICE: &'static str = "test-registry";
    pub const ISSUER: &'static str = "test-token-issuer";

    pub fn start(user: &str, password: &str) -> Arc<TokenServer> {
        let certified = rcgen::generate_simple_self_signed(vec!["test-token-issuer".to_string()]).expect("certificate");
        let certificate_der = certified.cert.der().to_vec();
        let rng = ring::rand::SystemRandom::new();
        let key = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &certified.signing_key.serialize_der(),
            &rng,
        )
        .expect("ES256 key");
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("token server"));
        let port = server.server_addr().to_ip().expect("ip address").port();
        let granted = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(Mutex::new(0));
        let expected = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
        let thread = {
            let (server, granted, refused, user) = (server.clone(), granted.clone(), refused.clone(), user.to_string());
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    let authorized = request
                        .headers()
                        .iter()
                        .any(|header| header.field.equiv("Authorization") && header.value.as_str() == expected);
                    if !authorized {
                        *refused.lock().unwrap() += 1;
                        let _ =
                            request.respond(tiny_http::Response::from_string("bad credentials").with_status_code(401));
                        continue;
                    }
                    let scopes: Vec<String> = query(request.url(), "scope");
                    granted.lock().unwrap().extend(scopes.iter().map(|scope| format!("{user} {scope}")));
                    let token = jwt(&key, &rng, &certificate_der, &user, &scopes);
                    let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 300});
                    let _ =
                        request.respond(tiny_http::Response::from_string(body.to_string()).with_header(
                            "Content-Type: application/json".parse::<tiny_http::Header>().expect("header"),
                        ));
                }
            })
        };
        Arc::new(TokenServer {
            server,
            thread: Mutex::new(Some(thread)),
            port,
            certificate_pem: certified.cert.pem(),
            granted,
            refused,
        })
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.lock().ok().and_then(|mut thread| thread.take()) {
            let _ = thread.join();
        }
    }
}

/// The values of a query parameter.
fn query(url: &str, name: &str) -> Vec<String> {
    let query = url.split_once('?').map(|(_, query)| query).unwrap_or_default();
    form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
        .collect()
}

/// A compact JWS (ES256) granting each `repository:<name>:<actions>` scope.
fn jwt(
    key: &ring::signature::EcdsaKeyPair,
    rng: &ring::rand::SystemRandom,
    certificate_der: &[u8],
    user: &str,
    scopes: &[String],
) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|scope| {
            let (kind, rest) = scope.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            Some(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
        })
        .collect();
    let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [STANDARD.encode(certificate_der)]});
    let claims = serde_json::json!({
        "iss": TokenServer::ISSUER, "sub": user, "aud": TokenServer::SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", scopes.join(" ")),
        "access": access,
    });
    let signing_input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = key.sign(rng, signing_input.as_bytes()).expect("sign");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

/// A plain HTTP/1.0 GET: status line and headers (lower-case names) and body.
pub fn http_get(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("receive");
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let body = response[split + 4..].to_vec();
    let mut lines = head.lines();
    let status =
        lines.next().and_then(|line| line.split(' ').nth(1)).and_then(|code| code.parse().ok()).expect("status");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    (status, headers, body)
}
