//! A storage decorator: [`Hooked`] forwards every [`Storage`] method to an
//! inner storage after running a hook that sees the operation ([`Op`]).
//! The hook can fail the operation (a fault: a full disk, an unreachable
//! store) or sleep and block first (a stalled or slow network), which is
//! what tests need of storage; the fault-injecting storage of the chaos
//! tests builds on it. As with rustic_core's layered backends, decorators
//! stack: a `Hooked` wraps any storage, another `Hooked` included.
//!
//! Every method is forwarded, the ones the trait has defaults for too: a
//! wrapper that left `concurrency` or `clean_up_uploads` to the defaults
//! would quietly make an object store look like a disk and never clean up
//! its dead uploads. A method added to [`Storage`] gets an [`Op`], a
//! forward here and a line in the test below.
//!
//! The hook sees the calls made to the decorator, not the inner storage's
//! calls to itself (a default method's listing, a multipart upload's
//! record): those are the backend's own business.

use std::fmt;
use std::sync::Arc;

use super::api::{Dir, Listed, ObjectName, Storage};
use crate::error::Result;
use crate::host::Holder;

/// One call of a [`Storage`] method, as a hook sees it before it runs.
#[derive(Clone, Copy, Debug)]
pub enum Op<'a> {
    PutIfAbsent {
        name: &'a ObjectName,
        data: &'a [u8],
    },
    Get {
        name: &'a ObjectName,
    },
    GetRange {
        name: &'a ObjectName,
        offset: u64,
        len: u64,
    },
    Size {
        name: &'a ObjectName,
    },
    List {
        kind: Dir,
    },
    Delete {
        name: &'a ObjectName,
    },
    Exists {
        name: &'a ObjectName,
    },
    Location,
    Concurrency,
    CleanUpUploads {
        listed: &'a [Listed],
    },
    PrepareNewVault,
    RemoveUnfinishedVault,
}

impl Op<'_> {
    /// The method's name in the trait, for messages and logs.
    pub fn method(&self) -> &'static str {
        match self {
            Op::PutIfAbsent { .. } => "put_if_absent",
            Op::Get { .. } => "get",
            Op::GetRange { .. } => "get_range",
            Op::Size { .. } => "size",
            Op::List { .. } => "list",
            Op::Delete { .. } => "delete",
            Op::Exists { .. } => "exists",
            Op::Location => "location",
            Op::Concurrency => "concurrency",
            Op::CleanUpUploads { .. } => "clean_up_uploads",
            Op::PrepareNewVault => "prepare_new_vault",
            Op::RemoveUnfinishedVault => "remove_unfinished_vault",
        }
    }

    /// The object the call is about, if it names one.
    pub fn name(&self) -> Option<&ObjectName> {
        match *self {
            Op::PutIfAbsent { name, .. }
            | Op::Get { name }
            | Op::GetRange { name, .. }
            | Op::Size { name }
            | Op::Delete { name }
            | Op::Exists { name } => Some(name),
            _ => None,
        }
    }

    /// The folder the call touches: its object's, the one listed, or
    /// `uploads/` for the clean-up of uploads.
    pub fn kind(&self) -> Option<Dir> {
        match self {
            Op::List { kind } => Some(*kind),
            Op::CleanUpUploads { .. } => Some(Dir::Uploads),
            _ => self.name().map(|n| n.kind),
        }
    }

    /// Whether the call writes (creates or deletes) objects.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Op::PutIfAbsent { .. }
                | Op::Delete { .. }
                | Op::CleanUpUploads { .. }
                | Op::PrepareNewVault
                | Op::RemoveUnfinishedVault
        )
    }
}

/// What runs before each call: `Err` fails the call without it reaching
/// the inner storage; sleeping or blocking delays it. `location` and
/// `concurrency` cannot fail and ignore an error (they are delayed like
/// the rest); `remove_unfinished_vault` cannot fail either, and an error
/// skips the removal.
pub type Hook = dyn Fn(&Op<'_>) -> Result<()> + Send + Sync;

/// What may change a listing after the inner storage answered: the fault
/// storage's stale listings drop objects written a moment ago from it.
pub type ListFilter = dyn Fn(Dir, &mut Vec<Listed>) + Send + Sync;

/// A storage that runs a [`Hook`] before forwarding each call to `inner`.
pub struct Hooked<S: ?Sized = dyn Storage> {
    hook: Box<Hook>,
    list_filter: Option<Box<ListFilter>>,
    inner: Arc<S>,
}

impl<S: Storage + ?Sized> Hooked<S> {
    pub fn new(
        inner: Arc<S>,
        hook: impl Fn(&Op<'_>) -> Result<()> + Send + Sync + 'static,
    ) -> Hooked<S> {
        Hooked {
            hook: Box::new(hook),
            list_filter: None,
            inner,
        }
    }

    /// Runs `filter` over every listing the inner storage returns.
    pub fn with_list_filter(
        mut self,
        filter: impl Fn(Dir, &mut Vec<Listed>) + Send + Sync + 'static,
    ) -> Hooked<S> {
        self.list_filter = Some(Box::new(filter));
        self
    }

    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }
}

impl<S: ?Sized + fmt::Debug> fmt::Debug for Hooked<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Hooked").field(&self.inner).finish()
    }
}

impl<S: Storage + ?Sized> Storage for Hooked<S> {
    fn put_if_absent(&self, name: &ObjectName, data: &[u8]) -> Result<bool> {
        (self.hook)(&Op::PutIfAbsent { name, data })?;
        self.inner.put_if_absent(name, data)
    }

    fn get(&self, name: &ObjectName) -> Result<Vec<u8>> {
        (self.hook)(&Op::Get { name })?;
        self.inner.get(name)
    }

    fn get_range(&self, name: &ObjectName, offset: u64, len: u64) -> Result<Vec<u8>> {
        (self.hook)(&Op::GetRange { name, offset, len })?;
        self.inner.get_range(name, offset, len)
    }

    fn size(&self, name: &ObjectName) -> Result<u64> {
        (self.hook)(&Op::Size { name })?;
        self.inner.size(name)
    }

    fn list(&self, kind: Dir) -> Result<Vec<Listed>> {
        (self.hook)(&Op::List { kind })?;
        let mut listed = self.inner.list(kind)?;
        if let Some(filter) = &self.list_filter {
            filter(kind, &mut listed);
        }
        Ok(listed)
    }

    fn delete(&self, name: &ObjectName) -> Result<()> {
        (self.hook)(&Op::Delete { name })?;
        self.inner.delete(name)
    }

    fn exists(&self, name: &ObjectName) -> Result<bool> {
        (self.hook)(&Op::Exists { name })?;
        self.inner.exists(name)
    }

    fn location(&self) -> String {
        let _ = (self.hook)(&Op::Location);
        self.inner.location()
    }

    fn concurrency(&self) -> usize {
        let _ = (self.hook)(&Op::Concurrency);
        self.inner.concurrency()
    }

    fn clean_up_uploads(&self, listed: &[Listed], live: &dyn Fn(&Holder) -> bool) -> Result<usize> {
        (self.hook)(&Op::CleanUpUploads { listed })?;
        self.inner.clean_up_uploads(listed, live)
    }

    fn prepare_new_vault(&self) -> Result<()> {
        (self.hook)(&Op::PrepareNewVault)?;
        self.inner.prepare_new_vault()
    }

    /// A failing hook skips the removal: best effort means "maybe not",
    /// and a store the hook calls unreachable must not be cleaned.
    fn remove_unfinished_vault(&self) {
        if (self.hook)(&Op::RemoveUnfinishedVault).is_ok() {
            self.inner.remove_unfinished_vault();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::error::Error;

    /// A storage that records each call and answers with values no
    /// default gives, so a call the decorator failed to forward shows.
    #[derive(Debug, Default)]
    struct Recorder {
        calls: Mutex<Vec<&'static str>>,
    }

    impl Recorder {
        fn saw(&self, method: &'static str) {
            self.calls.lock().unwrap().push(method);
        }
    }

    impl Storage for Recorder {
        fn put_if_absent(&self, _: &ObjectName, _: &[u8]) -> Result<bool> {
            self.saw("put_if_absent");
            Ok(false)
        }
        fn get(&self, _: &ObjectName) -> Result<Vec<u8>> {
            self.saw("get");
            Ok(b"got".to_vec())
        }
        fn get_range(&self, _: &ObjectName, offset: u64, len: u64) -> Result<Vec<u8>> {
            self.saw("get_range");
            Ok(vec![u8::try_from(offset + len).unwrap()])
        }
        fn size(&self, _: &ObjectName) -> Result<u64> {
            self.saw("size");
            Ok(41)
        }
        fn list(&self, _: Dir) -> Result<Vec<Listed>> {
            self.saw("list");
            Ok(vec![Listed {
                name: "listed".into(),
                size: 1,
                modified: None,
            }])
        }
        fn delete(&self, _: &ObjectName) -> Result<()> {
            self.saw("delete");
            Ok(())
        }
        fn exists(&self, _: &ObjectName) -> Result<bool> {
            self.saw("exists");
            Ok(true)
        }
        fn location(&self) -> String {
            self.saw("location");
            "recorder".into()
        }
        fn concurrency(&self) -> usize {
            self.saw("concurrency");
            17
        }
        fn clean_up_uploads(
            &self,
            listed: &[Listed],
            live: &dyn Fn(&Holder) -> bool,
        ) -> Result<usize> {
            self.saw("clean_up_uploads");
            Ok(listed.len() + usize::from(live(&Holder::this_process())) * 10)
        }
        fn prepare_new_vault(&self) -> Result<()> {
            self.saw("prepare_new_vault");
            Ok(())
        }
        fn remove_unfinished_vault(&self) {
            self.saw("remove_unfinished_vault");
        }
    }

    const EVERY_METHOD: [&str; 12] = [
        "put_if_absent",
        "get",
        "get_range",
        "size",
        "list",
        "delete",
        "exists",
        "location",
        "concurrency",
        "clean_up_uploads",
        "prepare_new_vault",
        "remove_unfinished_vault",
    ];

    /// Calls every method of the trait once, in [`EVERY_METHOD`]'s order.
    fn call_every_method(s: &dyn Storage) {
        let n = ObjectName::new(Dir::Packs, "abcd");
        assert!(!s.put_if_absent(&n, b"data").unwrap());
        assert_eq!(s.get(&n).unwrap(), b"got");
        assert_eq!(s.get_range(&n, 2, 3).unwrap(), [5]);
        assert_eq!(s.size(&n).unwrap(), 41);
        assert_eq!(s.list(Dir::Index).unwrap()[0].name, "listed");
        s.delete(&n).unwrap();
        assert!(s.exists(&n).unwrap());
        assert_eq!(s.location(), "recorder");
        assert_eq!(s.concurrency(), 17);
        let listed = s.list(Dir::Uploads).unwrap();
        assert_eq!(s.clean_up_uploads(&listed, &|_| true).unwrap(), 11);
        s.prepare_new_vault().unwrap();
        s.remove_unfinished_vault();
    }

    #[test]
    fn every_method_is_forwarded_with_its_answer() {
        let inner = Arc::new(Recorder::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let hooked = {
            let seen = Arc::clone(&seen);
            Hooked::new(Arc::clone(&inner), move |op: &Op<'_>| {
                seen.lock().unwrap().push(op.method());
                Ok(())
            })
        };
        call_every_method(&hooked);
        // `list` twice: once for itself, once for clean_up_uploads' records.
        let mut want = EVERY_METHOD.to_vec();
        want.insert(9, "list");
        assert_eq!(*inner.calls.lock().unwrap(), want);
        assert_eq!(*seen.lock().unwrap(), want);
        // Stacked decorators forward too.
        let inner = Arc::new(Recorder::default());
        let twice = Hooked::new(
            Arc::new(Hooked::new(Arc::clone(&inner), |_| Ok(()))),
            |_| Ok(()),
        );
        call_every_method(&twice);
        assert_eq!(*inner.calls.lock().unwrap(), want);
    }

    #[test]
    fn a_failing_hook_stops_the_call_before_the_inner_storage() {
        let inner = Arc::new(Recorder::default());
        let hooked = Hooked::new(Arc::clone(&inner), |op: &Op<'_>| {
            if op.kind() == Some(Dir::Locks) && op.writes() {
                return Err(Error::Internal(format!("injected: {}", op.method())));
            }
            Ok(())
        });
        let lock = ObjectName::new(Dir::Locks, "shared-1");
        let e = hooked.put_if_absent(&lock, b"lock").unwrap_err();
        assert!(e.to_string().contains("injected: put_if_absent"), "{e}");
        assert!(hooked.delete(&lock).is_err());
        assert!(hooked.exists(&lock).unwrap());
        assert!(!hooked.put_if_absent(&ObjectName::config(), b"c").unwrap());
        assert_eq!(*inner.calls.lock().unwrap(), ["exists", "put_if_absent"]);
    }

    #[test]
    fn the_hook_sees_what_each_call_is_about() {
        let n = ObjectName::new(Dir::Snapshots, "ff");
        let put = Op::PutIfAbsent {
            name: &n,
            data: b"12345",
        };
        assert_eq!(
            (put.kind(), put.name(), put.writes()),
            (Some(Dir::Snapshots), Some(&n), true)
        );
        assert!(matches!(put, Op::PutIfAbsent { data, .. } if data.len() == 5));
        let list = Op::List { kind: Dir::Packs };
        assert_eq!(
            (list.kind(), list.name(), list.writes()),
            (Some(Dir::Packs), None, false)
        );
        assert_eq!(
            Op::CleanUpUploads { listed: &[] }.kind(),
            Some(Dir::Uploads)
        );
        assert_eq!(Op::Concurrency.kind(), None);
    }
}
