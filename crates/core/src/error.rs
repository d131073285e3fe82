//! The failures a Magnum operation reports, with upstream's messages and HTTP
//! codes (`magnum/common/exception.py`): the API renders them as upstream's
//! error body, so the texts and codes are part of the contract.

/// One failure of a Magnum operation. `code()` is the HTTP status upstream
/// answers with; `Display` is upstream's message.
#[derive(Debug, thiserror::Error)]
pub enum MagnumError {
    #[error("{0}")]
    Invalid(String),
    #[error("Expected a uuid but received {0}.")]
    InvalidUuid(String),
    #[error("Expected a single dns address or comma separated dns list, but received {0}.")]
    InvalidDns(String),
    #[error("Couldn't apply patch '{patch}'. Reason: {reason}")]
    PatchError { patch: String, reason: String },
    #[error("{0}")]
    Conflict(String),
    #[error("Policy doesn't allow {0} to be performed.")]
    PolicyNotAuthorized(String),
    #[error("{0}")]
    NotAuthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("ClusterTemplate {0} could not be found.")]
    ClusterTemplateNotFound(String),
    #[error("A ClusterTemplate with UUID {0} already exists.")]
    ClusterTemplateAlreadyExists(String),
    #[error("ClusterTemplate {0} is referenced by one or multiple clusters.")]
    ClusterTemplateReferenced(String),
    #[error("Not authorized to set public or hidden flag for cluster template.")]
    ClusterTemplatePublishDenied,
    #[error("Cluster {0} could not be found.")]
    ClusterNotFound(String),
    #[error("Cluster type ({server_type}, {os}, {coe}) not supported.")]
    ClusterTypeNotSupported {
        server_type: String,
        os: String,
        coe: String,
    },
    #[error("Cluster driver ({0}) not supported.")]
    ClusterDriverNotSupported(String),
    #[error("Image {0} could not be found.")]
    ImageNotFound(String),
    #[error("Not authorized for image {0}.")]
    ImageNotAuthorized(String),
    #[error("Image {0} doesn't contain os_distro field.")]
    OsDistroFieldNotFound(String),
    #[error("Unable to find flavor {0}.")]
    FlavorNotFound(String),
    #[error("Unable to find keypair {0}.")]
    KeyPairNotFound(String),
    #[error("Unable to find external network {0}.")]
    ExternalNetworkNotFound(String),
    #[error("Unable to find fixed network {0}.")]
    FixedNetworkNotFound(String),
    #[error("Unable to find fixed subnet {0}.")]
    FixedSubnetNotFound(String),
    /// Upstream's `NotSupported` family: the text is the whole message.
    #[error("{0}")]
    NotSupportedMsg(String),
    #[error("{0} is not supported.")]
    NotSupported(String),
    #[error("Resource limit exceeded: {0}")]
    ResourceLimitExceeded(String),
    #[error("Nodegroup {0} could not be found.")]
    NodeGroupNotFound(String),
    #[error("A node group with name {name} already exists in the cluster {cluster}.")]
    NodeGroupAlreadyExists { name: String, cluster: String },
    #[error("Resizing {nodegroup} outside the allowed range: min_node_count = {min}, max_node_count = {max}")]
    NgResizeOutBounds {
        nodegroup: String,
        min: String,
        max: String,
    },
    #[error("Cluster Template is not valid for upgrade: {0}")]
    InvalidClusterTemplateForUpgrade(String),
    #[error("Cluster API address is not available yet")]
    ClusterApiAddressUnavailable,
    #[error("Failed to create trustee or trust for Cluster: {0}")]
    TrusteeOrTrustToClusterFailed(String),
    /// Another OpenStack service could not be asked: 503, try again.
    #[error("{0}")]
    ServiceUnavailable(String),
    /// Something went wrong on our side; the text is logged, never sent.
    #[error("{0}")]
    Internal(String),
}

impl MagnumError {
    /// The HTTP status upstream answers with for this failure.
    pub fn code(&self) -> u16 {
        use MagnumError::*;
        match self {
            Invalid(_)
            | InvalidUuid(_)
            | InvalidDns(_)
            | PatchError { .. }
            | ClusterTemplateReferenced(_)
            | ClusterTypeNotSupported { .. }
            | ClusterDriverNotSupported(_)
            | ImageNotFound(_)
            | OsDistroFieldNotFound(_)
            | FlavorNotFound(_)
            | ExternalNetworkNotFound(_)
            | FixedNetworkNotFound(_)
            | FixedSubnetNotFound(_)
            | NotSupportedMsg(_)
            | NotSupported(_)
            | NgResizeOutBounds { .. } => 400,
            PolicyNotAuthorized(_)
            | NotAuthorized(_)
            | ClusterTemplatePublishDenied
            | ImageNotAuthorized(_)
            | ResourceLimitExceeded(_) => 403,
            NotFound(_)
            | ClusterTemplateNotFound(_)
            | ClusterNotFound(_)
            | KeyPairNotFound(_)
            | NodeGroupNotFound(_) => 404,
            Conflict(_)
            | ClusterTemplateAlreadyExists(_)
            | NodeGroupAlreadyExists { .. }
            | InvalidClusterTemplateForUpgrade(_)
            | ClusterApiAddressUnavailable => 409,
            Internal(_) | TrusteeOrTrustToClusterFailed(_) => 500,
            ServiceUnavailable(_) => 503,
        }
    }
}
