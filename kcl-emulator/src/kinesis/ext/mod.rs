//! Channels and queues: account-level resources that read from a stream. Each has its
//! actions (`mod.rs`) and its state (`model.rs`). Together they are the stream store's
//! dependents ([`resources`]): the store keeps them beside the streams, in its lock order and
//! its metadata journal, through the hook the model defines.

pub(crate) mod channels;
pub(crate) mod lookup;
pub(crate) mod queues;
pub(crate) mod resources;

pub(crate) use resources::AccountResources;
