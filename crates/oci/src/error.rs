//! The one error type of the crate.

use std::path::PathBuf;

/// What can go wrong building, storing, pushing or pulling an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The plugin's metadata (name, version, phase, ...) is not usable.
    #[error("plugin {plugin}: {message}")]
    Plugin {
        /// The plugin's name.
        plugin: String,
        /// What is wrong.
        message: String,
    },
    /// An image (built, read from a layout or pulled) is not a valid plugin image.
    #[error("invalid image: {0}")]
    Image(String),
    /// An image reference such as `127.0.0.1:5000/plugins/mock:0.1.0` could not be parsed.
    #[error("invalid image reference {reference:?}: {message}")]
    Reference {
        /// The reference as given.
        reference: String,
        /// What is wrong.
        message: String,
    },
    /// The registry refused a request or could not be reached.
    #[error("registry {registry}: {}", causes(source))]
    Registry {
        /// The registry host (and port).
        registry: String,
        /// The client's error.
        source: oci_client::errors::OciDistributionError,
    },
    /// The credentials in the environment are incomplete.
    #[error("credentials: {0}")]
    Credentials(String),
    /// The workspace could not be inspected (`cargo metadata`).
    #[error("workspace: {0}")]
    Workspace(String),
}

/// An error with its causes, `outer: inner: innermost` (a TLS failure is
/// otherwise only "error sending request").
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        next = cause.source();
    }
    text
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Whether the registry (or its token server) refused the credentials, or
    /// wanted some and got none.
    pub fn is_unauthorized(&self) -> bool {
        use oci_client::errors::{OciDistributionError as Oci, OciErrorCode};
        let Error::Registry { source, .. } = self else { return false };
        match source {
            Oci::UnauthorizedError { .. } | Oci::AuthenticationFailure(_) => true,
            Oci::RequestError(err) => err.status() == Some(http::StatusCode::UNAUTHORIZED),
            Oci::ServerError { code, .. } => *code == 401,
            Oci::RegistryError { envelope, .. } => {
                envelope.errors.iter().any(|error| matches!(error.code, OciErrorCode::Unauthorized))
            }
            _ => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    pub(crate) fn plugin(plugin: &str, message: impl Into<String>) -> Error {
        Error::Plugin { plugin: plugin.to_string(), message: message.into() }
    }
}
