//! Every integration test in one binary, a module per area, so the crate is linked once
//! (27 binaries linking it apiece took most of CI's time on two cores). Run one area
//! with `cargo test --test it wallet::`, one test by its path.

mod common;

mod adapters;
mod admin;
mod africastalking;
mod agents;
mod airtime;
mod alerts;
mod anomalies;
mod application;
mod approvals;
mod bills;
mod chains;
mod channels;
mod chaos;
mod deadline;
mod delivery;
mod duplicates;
mod events;
mod faults;
mod flags;
mod four_eyes;
mod groups;
mod hardening;
mod identity;
mod inbound;
mod journeys;
mod keys;
mod lane;
mod ledger;
mod loadtest;
mod menus_cli;
mod merchants;
mod nats;
mod ops;
mod outbox;
mod partners;
mod phone;
mod profiles;
mod properties;
mod relay;
mod reload;
mod replicas;
mod reversals;
mod simulate;
mod sms_commands;
mod told;
mod topologies;
mod traces;
mod wallet;
mod webhooks;
