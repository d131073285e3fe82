//! Lookups Magnum makes in the cloud around it (Glance images, Nova flavors
//! and keypairs, Neutron networks and subnets) to validate what a user asks
//! for. One trait, [`CloudLookup`]; the real OpenStack implementation arrives
//! with Keystone support. With no cloud configured ([`NoCloud`], the
//! all-in-one default) every lookup answers [`Lookup::Skipped`] and callers
//! validate only what they can see.

use std::future::Future;
use std::pin::Pin;

use crate::{MagnumError, RequestContext};

/// A boxed future, so lookups can be called through `dyn CloudLookup`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a Glance image tells Magnum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Image {
    pub id: String,
    pub name: Option<String>,
    pub os_distro: Option<String>,
    /// The `magnum_driver` image property, naming a driver.
    pub magnum_driver: Option<String>,
}

/// What a Nova flavor tells Magnum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    pub disk_gb: u64,
}

/// The answer of one lookup.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup<T> {
    Found(T),
    /// No cloud is configured: the check does not apply.
    Skipped,
}

/// Lookups in the surrounding cloud. Every method fails with upstream's
/// error (e.g. `ImageNotFound`, `FlavorNotFound`) when the resource is absent.
pub trait CloudLookup: Send + Sync {
    /// Whether a cloud is configured at all.
    fn configured(&self) -> bool;
    fn image<'a>(
        &'a self,
        ctx: &'a RequestContext,
        ident: &'a str,
    ) -> BoxFuture<'a, Result<Lookup<Image>, MagnumError>>;
    fn flavor<'a>(
        &'a self,
        ctx: &'a RequestContext,
        ident: &'a str,
    ) -> BoxFuture<'a, Result<Lookup<Flavor>, MagnumError>>;
    fn keypair<'a>(
        &'a self,
        ctx: &'a RequestContext,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Lookup<()>, MagnumError>>;
    /// A network by id or name; `external` asks for a router:external one.
    fn network<'a>(
        &'a self,
        ctx: &'a RequestContext,
        ident: &'a str,
        external: bool,
    ) -> BoxFuture<'a, Result<Lookup<String>, MagnumError>>;
    fn subnet<'a>(
        &'a self,
        ctx: &'a RequestContext,
        ident: &'a str,
    ) -> BoxFuture<'a, Result<Lookup<String>, MagnumError>>;
}

/// No cloud configured: every lookup is skipped.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCloud;

impl CloudLookup for NoCloud {
    fn configured(&self) -> bool {
        false
    }
    fn image<'a>(
        &'a self,
        _: &'a RequestContext,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Lookup<Image>, MagnumError>> {
        Box::pin(async { Ok(Lookup::Skipped) })
    }
    fn flavor<'a>(
        &'a self,
        _: &'a RequestContext,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Lookup<Flavor>, MagnumError>> {
        Box::pin(async { Ok(Lookup::Skipped) })
    }
    fn keypair<'a>(
        &'a self,
        _: &'a RequestContext,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Lookup<()>, MagnumError>> {
        Box::pin(async { Ok(Lookup::Skipped) })
    }
    fn network<'a>(
        &'a self,
        _: &'a RequestContext,
        _: &'a str,
        _: bool,
    ) -> BoxFuture<'a, Result<Lookup<String>, MagnumError>> {
        Box::pin(async { Ok(Lookup::Skipped) })
    }
    fn subnet<'a>(
        &'a self,
        _: &'a RequestContext,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Lookup<String>, MagnumError>> {
        Box::pin(async { Ok(Lookup::Skipped) })
    }
}
