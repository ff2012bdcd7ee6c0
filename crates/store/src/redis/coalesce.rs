//! Coalescing: per key, one batch in flight at a time; what arrives
//! meanwhile waits and leaves together as the next batch.
//!
//! Why: under load many requests carry events of the same experiment.
//! Sending them as one script call instead of one call each saves Redis the
//! per-call overhead and lets the script read the experiment's state once,
//! which is what makes tracking on Redis cheap. At low load nothing waits:
//! an event for an idle experiment leaves at once, alone.

use std::collections::HashMap;
use std::sync::Mutex;

/// Queues of jobs per key (an experiment's key base); a key is in the map
/// exactly while a batch for it is in flight.
#[derive(Debug)]
pub struct Coalescer<J> {
    /// std Mutex: held for a few pushes or a drain, never across `.await`.
    queues: Mutex<HashMap<String, Vec<J>>>,
    max_batch: usize,
}

impl<J> Coalescer<J> {
    /// A coalescer whose batches hold at most `max_batch` jobs, the first
    /// one included (a larger push leaves in several batches).
    pub fn new(max_batch: usize) -> Self {
        Coalescer {
            queues: Mutex::new(HashMap::new()),
            max_batch: max_batch.max(1),
        }
    }

    /// Queues jobs for `key`, in order. When no batch for `key` is in
    /// flight, returns them as the batch to send now: the caller sends it,
    /// then calls [`Coalescer::next`] until it returns `None`.
    pub fn push(&self, key: &str, jobs: Vec<J>) -> Option<Vec<J>> {
        let mut queues = self.queues.lock().expect("coalescer lock poisoned");
        match queues.get_mut(key) {
            Some(waiting) => {
                waiting.extend(jobs);
                None
            }
            None => {
                let mut jobs = jobs;
                let rest = jobs.split_off(jobs.len().min(self.max_batch));
                queues.insert(key.to_owned(), rest);
                Some(jobs)
            }
        }
    }

    /// Jobs that queued for `key` since its batch was handed out, up to
    /// `room` of them, added to that batch before it leaves.
    pub fn top_up(&self, key: &str, batch: &mut Vec<J>) {
        let room = self.max_batch.saturating_sub(batch.len());
        let mut queues = self.queues.lock().expect("coalescer lock poisoned");
        if let Some(waiting) = queues.get_mut(key) {
            let n = waiting.len().min(room);
            batch.extend(waiting.drain(..n));
        }
    }

    /// After a batch for `key` is done: the next batch (the oldest waiting
    /// jobs), or `None` when nothing waits, which leaves `key` idle.
    pub fn next(&self, key: &str) -> Option<Vec<J>> {
        let mut queues = self.queues.lock().expect("coalescer lock poisoned");
        let waiting = queues.get_mut(key)?;
        if waiting.is_empty() {
            queues.remove(key);
            return None;
        }
        if waiting.len() <= self.max_batch {
            return Some(std::mem::take(waiting));
        }
        let rest = waiting.split_off(self.max_batch);
        Some(std::mem::replace(waiting, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_key_sends_at_once_and_a_busy_one_queues() {
        let c = Coalescer::new(10);
        assert_eq!(c.push("a", vec![1, 2]), Some(vec![1, 2]));
        assert_eq!(c.push("a", vec![3]), None);
        assert_eq!(c.push("b", vec![9]), Some(vec![9]), "keys are independent");
        assert_eq!(c.push("a", vec![4, 5]), None);
        assert_eq!(c.next("a"), Some(vec![3, 4, 5]), "in arrival order");
        assert_eq!(c.next("a"), None);
        assert_eq!(c.push("a", vec![6]), Some(vec![6]), "idle again");
        assert_eq!(c.next("b"), None);
    }

    #[test]
    fn a_batch_is_topped_up_with_what_queued_meanwhile() {
        let c = Coalescer::new(3);
        let mut batch = c.push("k", vec![1]).expect("idle key");
        c.push("k", vec![2, 3, 4]);
        c.top_up("k", &mut batch);
        assert_eq!(batch, vec![1, 2, 3], "up to the cap");
        c.top_up("other", &mut batch);
        assert_eq!(batch, vec![1, 2, 3], "another key adds nothing");
        assert_eq!(c.next("k"), Some(vec![4]));
        assert_eq!(c.next("k"), None);
    }

    #[test]
    fn follow_up_batches_are_capped() {
        let c = Coalescer::new(2);
        assert_eq!(c.push("k", vec![0]), Some(vec![0]));
        c.push("k", vec![1, 2, 3, 4, 5]);
        assert_eq!(c.next("k"), Some(vec![1, 2]));
        assert_eq!(c.next("k"), Some(vec![3, 4]));
        assert_eq!(c.next("k"), Some(vec![5]));
        assert_eq!(c.next("k"), None);
        assert_eq!(c.next("k"), None, "an idle key has nothing");
    }

    #[test]
    fn a_large_first_push_leaves_in_capped_batches() {
        let c = Coalescer::new(2);
        assert_eq!(c.push("k", vec![1, 2, 3, 4, 5]), Some(vec![1, 2]));
        assert_eq!(c.next("k"), Some(vec![3, 4]));
        assert_eq!(c.next("k"), Some(vec![5]));
        assert_eq!(c.next("k"), None);
    }
}
