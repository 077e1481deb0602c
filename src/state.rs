//! The states of a [`Context`](crate::Context): uninhabited marker types that exist only
//! at compile time.
//!
//! | state | guaranteed |
//! |---|---|
//! | [`Raw`] | nothing; plain data |
//! | [`Validated`] | every field passed the structural rule and the policy |
//! | [`Bound`] | validated, and tied to one live socket |
//!
//! [`State`] and [`Valid`] are sealed: no other crate can add a state. Each state's
//! storage (`Sealed::Repr`) lives in `context.rs`, beside the transitions that build it;
//! the two modules name each other, the one import cycle of the crate (see
//! `ARCHITECTURE.md`, "Lifecycle").

use crate::context::{BoundParts, Core, RawParts};

pub(crate) mod sealed {
    /// The storage of each state. Not nameable outside the crate.
    pub trait Sealed {
        type Repr: Clone + core::fmt::Debug + PartialEq + Send + Sync + 'static;
    }

    /// Access to the validated core of a [`Valid`](super::Valid) state.
    pub trait HasCore: Sealed {
        fn core(repr: &Self::Repr) -> &crate::context::Core;
        fn core_mut(repr: &mut Self::Repr) -> &mut crate::context::Core;
    }
}

/// A state of a [`Context`](crate::Context): [`Raw`], [`Validated`] or [`Bound`].
/// Sealed.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a context state",
    note = "the states are wsctx::state::Raw, wsctx::state::Validated and wsctx::state::Bound"
)]
pub trait State: sealed::Sealed + Send + Sync + 'static {}

/// A state whose fields passed validation: [`Validated`] or [`Bound`]. Sealed.
#[diagnostic::on_unimplemented(
    message = "`Context<{Self}>` has not been validated",
    note = "call `Context::validate` to turn a `Context<Raw>` into a `Context<Validated>`"
)]
pub trait Valid: State + sealed::HasCore {}

/// Plain, unchecked data, as received at the handshake.
#[derive(Debug)]
pub enum Raw {}

/// Every field passed the structural rule and the [`Policy`](crate::Policy); missing
/// thread, run and request ids were generated and checked.
#[derive(Debug)]
pub enum Validated {}

/// Validated, and tied to one live socket: a client id, a connection time and a peer
/// address. Only [`Context::bind`](crate::Context::bind) produces it.
#[derive(Debug)]
pub enum Bound {}

impl sealed::Sealed for Raw {
    type Repr = RawParts;
}
impl sealed::Sealed for Validated {
    type Repr = Core;
}
impl sealed::Sealed for Bound {
    type Repr = BoundParts;
}

impl sealed::HasCore for Validated {
    fn core(repr: &Core) -> &Core {
        repr
    }
    fn core_mut(repr: &mut Core) -> &mut Core {
        repr
    }
}
impl sealed::HasCore for Bound {
    fn core(repr: &BoundParts) -> &Core {
        &repr.core
    }
    fn core_mut(repr: &mut BoundParts) -> &mut Core {
        &mut repr.core
    }
}

impl State for Raw {}
impl State for Validated {}
impl State for Bound {}
impl Valid for Validated {}
impl Valid for Bound {}
