//! The local-AWS harness: moto server on a free loopback port, reached through the real SDK
//! clients, plus seeders that build demo and test accounts in it.

pub mod local;
pub mod moto;
pub mod seed;

pub use moto::Moto;
