//! Step records: per image name and step position, what the name's last build of that step
//! read, so the next build can say exactly why a step ran (`seal build --explain`) and
//! `seal history` can say when a layer was built.
//!
//! The store keeps them as opaque bytes (the engine encodes them) in the `steps` column family,
//! under `<name>\0s\0<position>`, with the step's source file list, when it has one, apart
//! under `<name>\0f\0<position>` (read only to explain a change of sources). They name no
//! blob a build needs: `prune` drops those of names that are gone and nothing else.

use rocksdb::WriteBatch;

use crate::db::{CF_IMAGES, CF_STEPS};
use crate::{Store, StoreError};

/// One step's records as a build writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepWrite {
    /// The step's position in the Kubefile (`stage-0/3`): the engine's key.
    pub position: String,
    /// What the step read.
    pub record: Vec<u8>,
    /// Its source file list; `None` leaves the stored one as it is.
    pub files: Option<Vec<u8>>,
}

impl Store {
    /// The step records of image name `name`, `(position, record)` sorted by position.
    pub fn steps(&self, name: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let prefix = step_key(name, b's', "");
        Ok(self
            .db
            .scan_prefix(CF_STEPS, &prefix)?
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k[prefix.len()..]).into_owned(), v))
            .collect())
    }

    /// The source file list stored with the step record of `name` at `position`.
    pub fn step_files(&self, name: &str, position: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get(CF_STEPS, &step_key(name, b'f', position))
    }

    /// Write step records of `name` in one batch (nothing, and no writable open, when `steps`
    /// is empty).
    pub fn put_steps(&self, name: &str, steps: &[StepWrite]) -> Result<(), StoreError> {
        if steps.is_empty() {
            return Ok(());
        }
        let cf = self.db.cf(CF_STEPS)?;
        let mut batch = WriteBatch::default();
        for step in steps {
            batch.put_cf(cf, step_key(name, b's', &step.position), &step.record);
            if let Some(files) = &step.files {
                batch.put_cf(cf, step_key(name, b'f', &step.position), files);
            }
        }
        self.db.write(batch)
    }

    /// Add to `batch` the deletion of every step record whose image name is gone; returns how
    /// many names' records go.
    pub(crate) fn drop_steps_of_gone_names(
        &self,
        batch: &mut WriteBatch,
    ) -> Result<u64, StoreError> {
        let names: std::collections::BTreeSet<Vec<u8>> = self
            .db
            .scan(CF_IMAGES)?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let cf = self.db.cf(CF_STEPS)?;
        let mut gone = std::collections::BTreeSet::new();
        for (k, _) in self.db.scan_prefix(CF_STEPS, b"")? {
            let name = k.split(|&b| b == 0).next().unwrap_or_default();
            if !names.contains(name) {
                batch.delete_cf(cf, &k);
                gone.insert(name.to_vec());
            }
        }
        Ok(gone.len() as u64)
    }
}

/// `<name>\0<kind>\0<position>`.
fn step_key(name: &str, kind: u8, position: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + position.len() + 3);
    key.extend_from_slice(name.as_bytes());
    key.extend_from_slice(&[0, kind, 0]);
    key.extend_from_slice(position.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Reference;

    fn write(store: &Store, name: &str, position: &str, record: &str, files: Option<&str>) {
        store
            .put_steps(
                name,
                &[StepWrite {
                    position: position.into(),
                    record: record.as_bytes().to_vec(),
                    files: files.map(|f| f.as_bytes().to_vec()),
                }],
            )
            .unwrap();
    }

    #[test]
    fn records_are_per_name_and_position_and_files_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), &mut || {}).unwrap();
        write(&store, "a:1", "stage-0/2", "two", Some("files of two"));
        write(&store, "a:1", "stage-0/1", "one", None);
        // A name that extends another's is not among its records.
        write(&store, "a:10", "stage-0/1", "other", None);
        assert_eq!(
            store.steps("a:1").unwrap(),
            vec![
                ("stage-0/1".to_string(), b"one".to_vec()),
                ("stage-0/2".to_string(), b"two".to_vec())
            ]
        );
        assert_eq!(
            store.step_files("a:1", "stage-0/2").unwrap().as_deref(),
            Some(&b"files of two"[..])
        );
        assert_eq!(store.step_files("a:1", "stage-0/1").unwrap(), None);
        // Rewriting a record without files keeps the stored list.
        write(&store, "a:1", "stage-0/2", "two again", None);
        assert_eq!(
            store.step_files("a:1", "stage-0/2").unwrap().as_deref(),
            Some(&b"files of two"[..])
        );
        assert!(store.steps("b:1").unwrap().is_empty());
    }

    #[test]
    fn records_of_names_that_are_gone_are_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), &mut || {}).unwrap();
        let manifest = store.blobs().put(b"{}").unwrap();
        let kept = Reference::parse_cluster_image("kept:1").unwrap();
        store.set_image(&kept, &manifest).unwrap();
        write(&store, &kept.to_string(), "stage-0/1", "k", Some("kf"));
        write(&store, "gone:1", "stage-0/1", "g", Some("gf"));
        let mut batch = WriteBatch::default();
        assert_eq!(store.drop_steps_of_gone_names(&mut batch).unwrap(), 1);
        store.db.write(batch).unwrap();
        assert!(store.steps("gone:1").unwrap().is_empty());
        assert_eq!(store.step_files("gone:1", "stage-0/1").unwrap(), None);
        assert_eq!(store.steps(&kept.to_string()).unwrap().len(), 1);
    }
}
