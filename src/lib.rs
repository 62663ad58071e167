//! ussd-gateway: USSD and SMS menus for mobile money, over a double-entry ledger.

pub mod address;
pub mod admin;
pub mod app;
pub mod breaker;
pub mod bytes;
pub mod channel;
pub mod cli;
pub mod config;
pub mod domain;
pub mod events;
pub mod flags;
pub mod gateway;
pub mod gsm;
pub mod http;
pub mod journeys;
pub mod loadtest;
pub mod menu;
pub mod money;
pub mod ops;
pub mod outcome;
pub mod problems;
pub mod redis_link;
pub mod segments;
pub mod session;
pub mod signature;
pub mod simulate;
pub mod sms;
pub mod telemetry;

#[cfg(test)]
mod layering;
