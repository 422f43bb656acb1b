//! Pushing images to, and pulling them from, any OCI distribution registry
//! (with `oci-client`, which speaks the protocol: `WWW-Authenticate`
//! challenges, basic auth, bearer tokens from the challenge's realm, chunked
//! blob uploads).
//!
//! Plain HTTP is used only for a loopback registry (`localhost`, `127.0.0.0/8`,
//! `[::1]`) or when the caller asks for it ([`Registry::insecure`]); everything
//! else goes over HTTPS with the system's root certificates, plus any CA given
//! with [`Registry::ca_certificate`] (which also means HTTPS on loopback).

use crate::error::{Error, Result};
use crate::image::Image;
use crate::media;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use std::net::IpAddr;
use std::time::Duration;

/// Environment variable with the registry user name (basic auth, or the
/// credentials the token server wants).
pub const USERNAME_VAR: &str = "OCI_USERNAME";
/// Environment variable with that user's password.
pub const PASSWORD_VAR: &str = "OCI_PASSWORD";
/// Environment variable with a ready bearer token (instead of a user and password).
pub const TOKEN_VAR: &str = "OCI_TOKEN";

/// The largest blob [`Registry::pull`] accepts.
pub const MAX_BLOB_SIZE: i64 = 512 * 1024 * 1024;

/// A registry client: credentials and transport policy.
#[derive(Debug, Clone)]
pub struct Registry {
    auth: RegistryAuth,
    insecure: bool,
    ca_certificates: Vec<Vec<u8>>,
}

/// What [`Registry::push`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The full reference pushed to, e.g. `127.0.0.1:5000/plugins/mock:0.1.0`.
    pub reference: String,
    /// The manifest digest the registry reports for it (checked to be the image's).
    pub digest: String,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blobs the registry already had.
    pub present: usize,
}

impl Registry {
    /// A client with these credentials.
    pub fn new(auth: RegistryAuth) -> Registry {
        Registry { auth, insecure: false, ca_certificates: Vec::new() }
    }

    /// A client with the credentials of the environment: `OCI_USERNAME` and
    /// `OCI_PASSWORD`, or `OCI_TOKEN`, or none.
    pub fn from_env() -> Result<Registry> {
        Ok(Registry::new(auth_from_env()?))
    }

    /// Allows plain HTTP to any registry, not only loopback ones.
    pub fn insecure(mut self, insecure: bool) -> Registry {
        self.insecure = insecure;
        self
    }

    /// Trusts a CA certificate (PEM) besides the system's roots, for a
    /// registry with a private CA, and speaks HTTPS to loopback registries
    /// too (unless [`Registry::insecure`]).
    pub fn ca_certificate(mut self, pem: Vec<u8>) -> Registry {
        self.ca_certificates.push(pem);
        self
    }

    /// Pushes `image` as `reference` (`host[:port]/repository[:tag]`, an
    /// `oci://` prefix allowed): every blob the registry lacks, then the
    /// manifest's exact bytes; then checks the digest the registry reports.
    pub async fn push(&self, image: &Image, reference: &str) -> Result<Pushed> {
        let reference = parse_reference(reference)?;
        if let Some(digest) = reference.digest() {
            if digest != image.digest() {
                return Err(Error::Reference {
                    reference: reference.whole(),
                    message: format!("the image's digest is {}", image.digest()),
                });
            }
        }
        let client = self.client(&reference)?;
        let fail = registry_error(&reference);
        client.auth(&reference, &self.auth, RegistryOperation::Push).await.map_err(&fail)?;
        let (mut uploaded, mut present) = (0, 0);
        for (descriptor, data) in image.blobs() {
            if client.blob_exists(&reference, &descriptor.digest).await.map_err(&fail)? {
                present += 1;
                continue;
            }
            client.push_blob(&reference, data.to_vec(), &descriptor.digest).await.map_err(&fail)?;
            uploaded += 1;
        }
        let content_type = http::HeaderValue::from_static(media::MANIFEST);
        client.push_manifest_raw(&reference, image.manifest_json().to_vec(), content_type).await.map_err(&fail)?;
        let digest = client.fetch_manifest_digest(&reference, &self.auth).await.map_err(&fail)?;
        if digest != image.digest() {
            return Err(Error::Image(format!(
                "the registry reports digest {digest} for {}, the image's is {}",
                reference.whole(),
                image.digest()
            )));
        }
        Ok(Pushed { reference: reference.whole(), digest, uploaded, present })
    }

    /// Pulls the image `reference` names, checking every digest. It need not
    /// be a plugin image; [`Image::check_plugin`] says whether it is one.
    pub async fn pull(&self, reference: &str) -> Result<Image> {
        let reference = parse_reference(reference)?;
        let client = self.client(&reference)?;
        let fail = registry_error(&reference);
        client.auth(&reference, &self.auth, RegistryOperation::Pull).await.map_err(&fail)?;
        let (manifest_json, digest) =
            client.pull_manifest_raw(&reference, &self.auth, &[media::MANIFEST]).await.map_err(&fail)?;
        let manifest: OciImageManifest = serde_json::from_slice(&manifest_json)
            .map_err(|err| Error::Image(format!("{} is not an OCI image manifest: {err}", reference.whole())))?;
        let config = pull_blob(&client, &reference, &manifest.config).await.map_err(&fail)?;
        let mut layers = Vec::new();
        for layer in &manifest.layers {
            layers.push(pull_blob(&client, &reference, layer).await.map_err(&fail)?);
        }
        let image = Image::from_parts(manifest_json.to_vec(), config, layers)?;
        if image.digest() != digest || reference.digest().is_some_and(|wanted| wanted != digest) {
            return Err(Error::Image(format!(
                "{}: manifest digest {} where the registry says {digest}",
                reference.whole(),
                image.digest()
            )));
        }
        Ok(image)
    }

    fn client(&self, reference: &Reference) -> Result<oci_client::Client> {
        // reqwest is built without a default crypto provider (see Cargo.toml);
        // an error here only means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let registry = reference.resolve_registry();
        let tls_expected = !self.ca_certificates.is_empty() && !self.insecure;
        let protocol = if !tls_expected && plain_http(registry, self.insecure) {
            ClientProtocol::HttpsExcept(vec![registry.to_string()])
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(120)),
            user_agent: concat!("gateway-oci/", env!("CARGO_PKG_VERSION")),
            extra_root_certificates: self
                .ca_certificates
                .iter()
                .map(|pem| Certificate { encoding: CertificateEncoding::Pem, data: pem.clone() })
                .collect(),
            ..ClientConfig::default()
        };
        oci_client::Client::try_from(config).map_err(registry_error(reference))
    }
}

async fn pull_blob(
    client: &oci_client::Client,
    reference: &Reference,
    descriptor: &OciDescriptor,
) -> std::result::Result<Vec<u8>, OciDistributionError> {
    if !(0..=MAX_BLOB_SIZE).contains(&descriptor.size) {
        return Err(OciDistributionError::SpecViolationError(format!(
            "blob {} of {} bytes (at most {MAX_BLOB_SIZE} accepted)",
            descriptor.digest, descriptor.size
        )));
    }
    let mut data = Vec::new();
    client.pull_blob(reference, descriptor, &mut data).await?;
    Ok(data)
}

fn registry_error(reference: &Reference) -> impl Fn(OciDistributionError) -> Error {
    let registry = reference.resolve_registry().to_string();
    move |source| Error::Registry { registry: registry.clone(), source }
}

/// Parses `host[:port]/repository[:tag][@digest]`, with or without `oci://`.
pub fn parse_reference(text: &str) -> Result<Reference> {
    let bare = text.strip_prefix("oci://").unwrap_or(text);
    bare.parse::<Reference>().map_err(|err| Error::Reference { reference: text.to_string(), message: err.to_string() })
}

/// Credentials from `OCI_USERNAME` + `OCI_PASSWORD`, or `OCI_TOKEN`, or anonymous.
pub fn auth_from_env() -> Result<RegistryAuth> {
    let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    match (var(USERNAME_VAR), var(PASSWORD_VAR), var(TOKEN_VAR)) {
        (Some(username), Some(password), _) => Ok(RegistryAuth::Basic(username, password)),
        (None, None, Some(token)) => Ok(RegistryAuth::Bearer(token)),
        (None, None, None) => Ok(RegistryAuth::Anonymous),
        _ => Err(Error::Credentials(format!("set both {USERNAME_VAR} and {PASSWORD_VAR}, or {TOKEN_VAR}, or none"))),
    }
}

/// Whether to talk plain HTTP to `registry` (`host[:port]`): for loopback
/// hosts, and for any host when `insecure`.
pub fn plain_http(registry: &str, insecure: bool) -> bool {
    insecure || is_loopback(registry)
}

fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.rsplit_once(':').map_or(registry, |(host, _port)| host),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_or_insecure() {
        for loopback in ["127.0.0.1:5000", "127.1.2.3", "localhost:5000", "LOCALHOST", "[::1]:5000", "[::1]"] {
            assert!(plain_http(loopback, false), "{loopback}");
        }
        for remote in ["registry.example.com", "10.0.0.1:5000", "192.168.1.1", "[2001:db8::1]:5000", "localhost.evil"] {
            assert!(!plain_http(remote, false), "{remote}");
            assert!(plain_http(remote, true), "{remote}");
        }
    }

    #[test]
    fn references_parse() {
        let reference = parse_reference("oci://127.0.0.1:5000/plugins/mock:0.1.0").unwrap();
        assert_eq!(reference.registry(), "127.0.0.1:5000");
        assert_eq!(reference.repository(), "plugins/mock");
        assert_eq!(reference.tag(), Some("0.1.0"));
        assert!(parse_reference("Not A Reference").is_err());
    }
}
