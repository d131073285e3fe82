//! A cluster's history (our own table `rs_cluster_event`): what happened to
//! it and its node groups, one [`ClusterEvent`] per step, and why a failure
//! happened, classified ([`FailureClass`]).
//!
//! Events are facts, recorded with what they describe: the API records
//! `queued` in the transaction that queues an operation; a conductor
//! records `claimed` with the claim, `retried` and `finished`/`failed` in
//! the fenced transaction of the attempt's outcome, and what the status
//! sync concludes (with the driver's own events) with the status move.
//! `status_reason` keeps upstream's text; the class is ours.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::drivers::DriverError;

/// What an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// An operation was queued (by the API, or a conductor adopting a cast
    /// from upstream's API).
    Queued,
    /// A conductor claimed the operation (its host and attempt).
    Claimed,
    /// The attempt could not run now and is kept for another (why).
    Retried,
    /// The operation ended: handed to the orchestration, or done.
    Finished,
    /// The operation, or the orchestration's work, failed (with a class).
    Failed,
    /// The orchestration's own build or change completed.
    Completed,
    /// An event the driver reported (e.g. a Heat resource that failed).
    Driver,
    /// The conductor acted with the service's own credentials because the
    /// owner's trust could not be used.
    ServiceCredentials,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::Queued,
        EventKind::Claimed,
        EventKind::Retried,
        EventKind::Finished,
        EventKind::Failed,
        EventKind::Completed,
        EventKind::Driver,
        EventKind::ServiceCredentials,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Queued => "queued",
            EventKind::Claimed => "claimed",
            EventKind::Retried => "retried",
            EventKind::Finished => "finished",
            EventKind::Failed => "failed",
            EventKind::Completed => "completed",
            EventKind::Driver => "driver",
            EventKind::ServiceCredentials => "service_credentials",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Why something failed, exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureClass {
    /// A quota of the cloud (or Magnum's) was exceeded.
    Quota,
    ImageMissing,
    FlavorMissing,
    KeypairMissing,
    NetworkMissing,
    /// The cloud could not be reached or said it is unavailable.
    CloudUnreachable,
    /// Keystone (or a service) refused the credentials used.
    CredentialsRefused,
    /// Something took longer than it was allowed.
    Timeout,
    /// Anything else the driver or orchestration reported.
    DriverError,
}

impl FailureClass {
    pub const ALL: [FailureClass; 9] = [
        FailureClass::Quota,
        FailureClass::ImageMissing,
        FailureClass::FlavorMissing,
        FailureClass::KeypairMissing,
        FailureClass::NetworkMissing,
        FailureClass::CloudUnreachable,
        FailureClass::CredentialsRefused,
        FailureClass::Timeout,
        FailureClass::DriverError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Quota => "quota",
            FailureClass::ImageMissing => "image_missing",
            FailureClass::FlavorMissing => "flavor_missing",
            FailureClass::KeypairMissing => "keypair_missing",
            FailureClass::NetworkMissing => "network_missing",
            FailureClass::CloudUnreachable => "cloud_unreachable",
            FailureClass::CredentialsRefused => "credentials_refused",
            FailureClass::Timeout => "timeout",
            FailureClass::DriverError => "driver_error",
        }
    }

    pub fn parse(s: &str) -> Option<FailureClass> {
        FailureClass::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The class of a failure described by `text` (a driver's, Heat's or
    /// Nova's words, or the conductor's own): the first rule that matches,
    /// in order of how specific it is; otherwise a driver error.
    pub fn classify(text: &str) -> FailureClass {
        let t = text.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| t.contains(w));
        let missing = has(&[
            "not found",
            "could not be found",
            "cannot be found",
            "no such",
            "does not exist",
            "notfound",
            "unable to find",
        ]);
        if has(&["quota", "overlimit", "over limit", "limit exceeded"]) {
            FailureClass::Quota
        } else if has(&[
            // Keystone refusing a token: the trustee, trust or project is
            // gone, or the password is wrong.
            "keystone answered 401",
            "keystone answered 403",
            "keystone answered 404",
            "401",
            "unauthorized",
            "403 forbidden",
            "credentials",
            "authentication",
            "trust ",
            "trust:",
        ]) && !has(&["timed out", "timeout"])
        {
            FailureClass::CredentialsRefused
        } else if missing && has(&["image"]) {
            FailureClass::ImageMissing
        } else if missing && has(&["flavor"]) {
            FailureClass::FlavorMissing
        } else if missing && has(&["keypair", "key pair", "key_name"]) {
            FailureClass::KeypairMissing
        } else if missing && has(&["network", "subnet", "router", "port"]) {
            FailureClass::NetworkMissing
        } else if has(&["timed out", "timeout", "did not answer within"]) {
            FailureClass::Timeout
        } else if has(&[
            "unreachable",
            "connection refused",
            "service unavailable",
            "503",
            "502",
            "504",
            "could not connect",
        ]) {
            FailureClass::CloudUnreachable
        } else {
            FailureClass::DriverError
        }
    }

    /// The class of a driver's failure: an unreachable cloud is that,
    /// unless its words say the credentials were refused.
    pub fn of_driver_error(e: &DriverError) -> FailureClass {
        match e {
            DriverError::Unreachable(text) => match FailureClass::classify(text) {
                FailureClass::CredentialsRefused => FailureClass::CredentialsRefused,
                _ => FailureClass::CloudUnreachable,
            },
            DriverError::Failed(text) | DriverError::NotAvailable(text) => {
                FailureClass::classify(text)
            }
        }
    }
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of a cluster's history (a row of `rs_cluster_event`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterEvent {
    pub id: i64,
    pub uuid: String,
    pub cluster_uuid: String,
    /// The node group the event is about, if one.
    pub nodegroup_uuid: Option<String>,
    /// The queued operation it belongs to, if one.
    pub operation_uuid: Option<String>,
    /// [`EventKind::as_str`].
    pub kind: String,
    /// Upstream's conductor method of the operation.
    pub method: Option<String>,
    /// The status it left the cluster (or node group) in, when it moved.
    pub status: Option<String>,
    /// [`FailureClass::as_str`] of a failure.
    pub reason_class: Option<String>,
    /// The driver's resource an event of the driver is about.
    pub resource: Option<String>,
    pub message: Option<String>,
    /// The host of the conductor that recorded it.
    pub host: Option<String>,
    pub created_at: Option<NaiveDateTime>,
}

impl ClusterEvent {
    /// A new event of `kind` about `cluster_uuid`, with a fresh uuid.
    pub fn new(cluster_uuid: &str, kind: EventKind, message: impl Into<String>) -> ClusterEvent {
        ClusterEvent {
            uuid: uuid::Uuid::new_v4().to_string(),
            cluster_uuid: cluster_uuid.into(),
            kind: kind.as_str().into(),
            message: Some(message.into()),
            ..Default::default()
        }
    }

    /// A failure, its class taken from `message`.
    pub fn failure(cluster_uuid: &str, message: &str) -> ClusterEvent {
        ClusterEvent::new(cluster_uuid, EventKind::Failed, message)
            .class(FailureClass::classify(message))
    }

    pub fn class(mut self, c: FailureClass) -> ClusterEvent {
        self.reason_class = Some(c.as_str().into());
        self
    }

    pub fn method(mut self, m: &str) -> ClusterEvent {
        self.method = Some(m.into());
        self
    }

    pub fn operation(mut self, uuid: &str) -> ClusterEvent {
        self.operation_uuid = Some(uuid.into());
        self
    }

    pub fn nodegroup(mut self, uuid: Option<&str>) -> ClusterEvent {
        self.nodegroup_uuid = uuid.map(str::to_string);
        self
    }

    pub fn status(mut self, s: &str) -> ClusterEvent {
        self.status = Some(s.into());
        self
    }

    pub fn host(mut self, h: &str) -> ClusterEvent {
        self.host = Some(h.into());
        self
    }

    pub fn resource(mut self, r: &str) -> ClusterEvent {
        self.resource = Some(r.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_round_trip() {
        for c in FailureClass::ALL {
            assert_eq!(FailureClass::parse(c.as_str()), Some(c));
        }
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(FailureClass::parse("nope"), None);
    }

    #[test]
    fn failures_are_classified_by_their_words() {
        use FailureClass::*;
        let cases = [
            // Nova and Heat, as they word them.
            ("Quota exceeded for cores: Requested 8, but already used 20 of 20 cores", Quota),
            ("resources.kube_masters: OverLimit: Maximum number of ports exceeded", Quota),
            ("Image fedora-coreos-40 could not be found.", ImageMissing),
            ("Property error: resources.server.properties.image: Error validating value 'x': No images matching {'name': 'x'}. not found", ImageMissing),
            ("Flavor m1.huge could not be found.", FlavorMissing),
            ("The Key (default) could not be found. keypair", KeypairMissing),
            ("Keypair mykey not found for user", KeypairMissing),
            ("Network private could not be found.", NetworkMissing),
            ("Subnet 1234 not found", NetworkMissing),
            ("Cluster creation timed out after 60 minutes", Timeout),
            ("the driver did not answer within 600 seconds", Timeout),
            ("the fake cloud is unreachable (to create cluster x)", CloudUnreachable),
            ("orchestration: 503 Service Unavailable", CloudUnreachable),
            ("keystone: 401 Unauthorized: The request you have made requires authentication.", CredentialsRefused),
            ("Keystone answered 404: Could not find project: 6a1b.", CredentialsRefused),
            ("Keystone refused authentication (401 Unauthorized)", CredentialsRefused),
            ("fake cloud: create failed as asked", DriverError),
            ("", DriverError),
        ];
        for (text, class) in cases {
            assert_eq!(FailureClass::classify(text), class, "{text}");
        }
    }

    #[test]
    fn driver_errors_are_classified_by_kind_then_words() {
        use FailureClass::{CloudUnreachable, CredentialsRefused, Quota};
        let e = DriverError::Unreachable("connection refused to heat".into());
        assert_eq!(FailureClass::of_driver_error(&e), CloudUnreachable);
        // An unreachable cloud whose words say nothing about reaching it is
        // still unreachable.
        let e = DriverError::Unreachable("stack x: gateway said no".into());
        assert_eq!(FailureClass::of_driver_error(&e), CloudUnreachable);
        let e = DriverError::Unreachable("401 Unauthorized".into());
        assert_eq!(FailureClass::of_driver_error(&e), CredentialsRefused);
        let e = DriverError::Failed("Quota exceeded for instances".into());
        assert_eq!(FailureClass::of_driver_error(&e), Quota);
        let e = DriverError::Failed("something broke".into());
        assert_eq!(FailureClass::of_driver_error(&e), FailureClass::DriverError);
    }

    #[test]
    fn events_are_built_with_their_facts() {
        let e = ClusterEvent::failure("c", "Flavor x could not be found.")
            .method("cluster_create")
            .status("CREATE_FAILED");
        assert_eq!(e.kind, "failed");
        assert_eq!(e.reason_class.as_deref(), Some("flavor_missing"));
        assert_eq!(e.uuid.len(), 36);
    }
}
