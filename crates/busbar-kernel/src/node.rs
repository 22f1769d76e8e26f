//! Nodes and handles (BUS1's capabilities).
//!
//! A node is an object owned by the endpoint that created it; a handle is an
//! endpoint's capability to a node. Handle ids are local to their holder,
//! start at 1 and are never reused; an endpoint holds at most one handle per
//! node, with a reference count. Handles are installed in a receiver's table
//! when a message carrying them is queued for it, so a handle "in flight" is
//! already a reference. The owner's handle is pinned while the node lives.

use crate::EndpointId;

/// Identifies a node on its bus (internal; endpoints only see handles).
pub(crate) type NodeId = u64;

/// One entry of an endpoint's handle table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HandleRef {
    pub node: NodeId,
    /// References held (at least 1 while the entry exists).
    pub refs: u64,
    /// The user whose send created the entry (charged for it).
    pub by: u32,
}

/// A node.
#[derive(Debug)]
pub(crate) struct Node {
    pub owner: EndpointId,
    /// Not destroyed yet.
    pub live: bool,
    /// Endpoints holding a handle to it (the owner included while it holds one).
    pub holders: Vec<EndpointId>,
    /// The `$.KBUS.Node.Released` notice queued at the owner and not yet
    /// taken, withdrawn if someone gets a handle again.
    pub release_notice: Option<crate::MessageId>,
}
