//! Opening a file's envelopes on every core: the batch opener the shells hand to
//! [`decrypt_owned_batched`](crate::core::decrypt_owned_batched), since the core itself
//! never starts a thread (STYLE 1).

use crate::core::cipher::Opener;
use crate::core::walk::SealedValue;
use rayon::prelude::*;

/// Below this many values a file is opened on the calling thread: starting rayon's
/// pool costs more than it saves on a small file (one Secret opens in microseconds).
const PARALLEL_FROM: usize = 1024;

/// Values handed to one task at a time: enough to amortize the scheduling.
const VALUES_PER_TASK: usize = 256;

/// Opens every value, spread over rayon's pool when there are many of them.
pub fn open_all(opener: &Opener, values: &mut [SealedValue<'_>]) {
    if values.len() < PARALLEL_FROM {
        values.iter_mut().for_each(|v| v.open(opener));
        return;
    }
    values
        .par_iter_mut()
        .with_min_len(VALUES_PER_TASK)
        .for_each(|v| v.open(opener));
}
