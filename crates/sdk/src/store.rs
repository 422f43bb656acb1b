//! The plugin-wide store: values a plugin keeps between hooks, one per type
//! (Go's `PluginContext.SetContext` / `GetContext`, typed).
//!
//! A configuration's store starts empty and lives as long as that
//! configuration: a reload starts a new one, as Go's plugin context does.
//! Each VM (each Envoy worker) has its own; what every VM must see goes to
//! [`shared`](crate::shared). A value is created with `Default` the first
//! time its type is asked for:
//!
//! ```
//! # use gateway_sdk::prelude::*;
//! # #[derive(Deserialize)]
//! # struct Config {}
//! /// Requests this VM saw under the current configuration.
//! #[derive(Default)]
//! struct Seen(u64);
//!
//! # struct Counting;
//! # impl Plugin for Counting {
//! #     const NAME: &'static str = "counting";
//! #     type Config = Config;
//! #     type State = ();
//! fn on_request_headers(req: &mut Request<Self>, _config: &Config) -> HeaderAction {
//!     let seen = req.plugin_store(|seen: &mut Seen| {
//!         seen.0 += 1;
//!         seen.0
//!     });
//!     req.log().debug(format_args!("request {seen:?} of this VM"));
//!     HeaderAction::Continue
//! }
//! # }
//! ```
//!
//! The closure gets the value for the time it runs; the store answers
//! `None` to a call made from inside another one (which would otherwise
//! need the store twice at once).

use std::any::{Any, TypeId};

/// What the store can keep: in a Wasm VM (one thread) any `Default` value;
/// natively, where Envoy's workers share a configuration, a `Send` one too.
#[cfg(not(feature = "native"))]
pub trait Stored: Default + 'static {}
#[cfg(not(feature = "native"))]
impl<T: Default + 'static> Stored for T {}
/// What the store can keep (native builds: shared by Envoy's worker threads).
#[cfg(feature = "native")]
pub trait Stored: Default + Send + 'static {}
#[cfg(feature = "native")]
impl<T: Default + Send + 'static> Stored for T {}

#[cfg(not(feature = "native"))]
type Value = Box<dyn Any>;
#[cfg(feature = "native")]
type Value = Box<dyn Any + Send>;

/// The values, by type.
#[derive(Default)]
pub(crate) struct Store {
    #[cfg(not(feature = "native"))]
    values: std::cell::RefCell<Vec<(TypeId, Value)>>,
    #[cfg(feature = "native")]
    values: std::sync::Mutex<Vec<(TypeId, Value)>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

#[cfg(feature = "native")]
thread_local! {
    /// Whether this thread is inside a store closure (a second lock would deadlock).
    static INSIDE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks this thread inside a store closure until dropped (also when the
/// closure panics: native hooks catch panics, and the thread lives on).
#[cfg(feature = "native")]
struct Inside;

#[cfg(feature = "native")]
impl Inside {
    fn enter() -> Inside {
        INSIDE.with(|inside| inside.set(true));
        Inside
    }
}

#[cfg(feature = "native")]
impl Drop for Inside {
    fn drop(&mut self) {
        INSIDE.with(|inside| inside.set(false));
    }
}

impl Store {
    /// Runs `f` on the value of type `T`, created with `Default` if there is
    /// none yet; `None` when called from inside another store closure.
    pub(crate) fn with<T: Stored, R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        #[cfg(not(feature = "native"))]
        let mut values = self.values.try_borrow_mut().ok()?;
        #[cfg(feature = "native")]
        let mut values = {
            if INSIDE.with(std::cell::Cell::get) {
                return None;
            }
            // A panic in another thread's closure leaves the values as they were.
            self.values.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let at = match values.iter().position(|(id, _)| *id == TypeId::of::<T>()) {
            Some(at) => at,
            None => {
                values.push((TypeId::of::<T>(), Box::new(T::default())));
                values.len() - 1
            }
        };
        let value = values.get_mut(at).and_then(|(_, value)| value.downcast_mut::<T>())?;
        #[cfg(feature = "native")]
        let _inside = Inside::enter();
        Some(f(value))
    }
}

#[cfg(test)]
mod tests {
    use super::Store;

    #[derive(Default)]
    struct Hits(u32);
    #[derive(Default)]
    struct Name(String);

    #[test]
    fn one_value_per_type_created_when_first_asked_for() {
        let store = Store::default();
        assert_eq!(store.with(|h: &mut Hits| h.0), Some(0));
        store.with(|h: &mut Hits| h.0 += 2);
        store.with(|n: &mut Name| n.0.push('a'));
        assert_eq!(store.with(|h: &mut Hits| h.0), Some(2));
        assert_eq!(store.with(|n: &mut Name| n.0.clone()).as_deref(), Some("a"));
    }

    #[test]
    fn a_call_from_inside_a_closure_gets_none() {
        let store = Store::default();
        let inner = store.with(|_: &mut Hits| store.with(|n: &mut Name| n.0.len()));
        assert_eq!(inner, Some(None));
        // The store is usable again afterwards.
        assert_eq!(store.with(|n: &mut Name| n.0.len()), Some(0));
    }
}
