//! File reservations (docs/protocol.md §6.10): advisory leases on path patterns of a repository.

use serde::{Deserialize, Serialize};

with_req_id! {
    /// `reserve_paths`: answered with `reservation_list`, holding the reservations made, or the conflicts that
    /// kept every one of them from being made.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ReservePaths {
        /// The repository: its normalized `origin` URL, or its root's path.
        pub scope: String,
        /// Path patterns relative to the repository's root (`src/**`, `*.rs`, `docs`).
        pub paths: Vec<String>,
        #[serde(default)]
        pub exclusive: bool,
        /// How long the reservation lasts; the broker's default (an hour) when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub ttl_secs: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub reason: Option<String>,
    }
}

with_req_id! {
    /// `release_paths`: the member's own reservations of those patterns, or all of its own in the scope when
    /// `paths` is empty; answered with `reservation_list` holding what was released.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ReleasePaths {
        pub scope: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub paths: Vec<String>,
    }
}

with_req_id! {
    /// `list_reservations`: the live reservations of one scope, or of every scope of the mesh.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ListReservations {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub scope: Option<String>,
    }
}

with_req_id! {
    /// `reservation_list`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ReservationList {
        pub reservations: Vec<Reservation>,
        /// For `reserve_paths`: another member's reservations that a requested pattern overlaps, where either
        /// is exclusive.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub conflicts: Vec<ReservationConflict>,
    }
}

/// One reservation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Reservation {
    pub id: String,
    pub scope: String,
    /// The normalized pattern.
    pub path: String,
    pub exclusive: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub member_id: String,
    /// The holder's display name.
    pub member_name: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// A requested pattern and the reservation it ran into.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ReservationConflict {
    /// The pattern asked for.
    pub path: String,
    pub held: Reservation,
}
