//! Magnum's Heat drivers: a cluster is a Heat stack built from our own
//! templates (`templates/`), created, followed and deleted through Heat's
//! API while acting for the cluster's owner through its trust.
//!
//! One [`HeatDriver`] per shipped driver name; they differ in the COE
//! templates they send and the boot configuration of their nodes
//! (`Magnum::Boot::*` in the environment: Ignition for Fedora CoreOS,
//! cloud-init for Ubuntu). Everything else — the queue, leases, status
//! sync, timeouts — is the conductor's, generic over drivers.

mod params;
mod stacks;
mod templates;

use magnum_core::config::opts;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use magnum_core::config::Config;
use magnum_core::drivers::{
    ClusterKind, ClusterSpec, Driver, DriverError, DriverFuture, Observed, HEAT_DRIVERS,
};
use magnum_core::objects::{ClusterTemplate, NodeGroup};
use magnum_openstack::heat::Heat;
use magnum_openstack::{Credential, Selector, Session};
use serde_json::json;

pub use params::{labels_markdown, Label, LABELS};
pub use templates::{Coe, EnvironmentError, Os};

/// What every Heat driver shares: how to reach Keystone and Heat, and the
/// operator's extra environments.
#[derive(Debug)]
pub struct HeatContext {
    /// A session for Keystone's URL and TLS settings; drivers act through
    /// per-cluster trust sessions made from it.
    base: Option<Session>,
    heat: Selector,
    magnum: Selector,
    extra: templates::Extra,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// The service's own session (`[keystone_auth]`, else
    /// `[keystone_authtoken]`): what finishes a delete whose owner's trust
    /// Keystone refuses.
    service: Option<Arc<Session>>,
    /// `[drivers] verify_ca`.
    verify_ca: bool,
    /// The options trusts need that are unset here.
    trust_unset: Vec<&'static str>,
}

/// Why a cluster has no trust, for its status reason: the options to set
/// when this service cannot make trusts, else how it was made without.
fn no_trust(cluster: &str, unset: &[&str]) -> String {
    if unset.is_empty() {
        format!(
            "cluster {cluster} has no trust to act for its owner with: it was created without \
             a Keystone token (auth_strategy noauth), and Heat drivers act through a trust \
             made from one"
        )
    } else {
        format!(
            "cluster {cluster} has no trust to act for its owner with: Heat drivers act through \
             a Keystone trust, and none can be made until magnum.conf sets {}",
            unset.join(", ")
        )
    }
}

impl HeatContext {
    /// The shared settings; fails only on an unusable
    /// `[drivers] heat_environment_files` entry.
    pub fn from_conf(conf: &Config) -> Result<HeatContext, templates::EnvironmentError> {
        let base = Session::service(conf).ok();
        let extra = templates::Extra::load(&conf.get(opts::drivers::HEAT_ENVIRONMENT_FILES))?;
        Ok(HeatContext {
            base,
            heat: Selector::from_conf(conf, "heat_client", "orchestration"),
            magnum: Selector::from_conf(conf, "magnum_client", "container-infra"),
            extra,
            sessions: Mutex::new(HashMap::new()),
            service: Session::service(conf).ok().map(Arc::new),
            verify_ca: conf.get(opts::drivers::VERIFY_CA),
            trust_unset: magnum_openstack::trusts::TrustManager::unset_options(conf),
        })
    }

    /// The session acting for a cluster's owner through its trust (or,
    /// when the conductor asks for it, the service's own).
    fn session(&self, spec: &ClusterSpec) -> Result<Arc<Session>, DriverError> {
        if spec.as_service {
            return self.service.clone().ok_or_else(|| {
                DriverError::Failed(
                    "no service credentials: set [keystone_authtoken] (or [keystone_auth])".into(),
                )
            });
        }
        let trust = spec
            .trust
            .as_ref()
            .ok_or_else(|| DriverError::Failed(no_trust(&spec.cluster.uuid, &self.trust_unset)))?;
        let base = self.base.as_ref().ok_or_else(|| {
            DriverError::Failed(
                "Heat drivers need Keystone: set [keystone_authtoken] (or [keystone_auth])".into(),
            )
        })?;
        let mut sessions = self
            .sessions
            .lock()
            .map_err(|_| DriverError::Failed("session cache poisoned".into()))?;
        let key = format!("{}/{}", spec.cluster.uuid, trust.trust_id);
        if let Some(s) = sessions.get(&key) {
            return Ok(s.clone());
        }
        if sessions.len() > 1000 {
            sessions.clear();
        }
        let s = Arc::new(base.with_credential(Credential::Trust {
            user_id: trust.user_id.clone(),
            password: trust.password.clone(),
            trust_id: trust.trust_id.clone(),
        }));
        sessions.insert(key, s.clone());
        Ok(s)
    }

    fn heat(&self, spec: &ClusterSpec) -> Result<Heat, DriverError> {
        Ok(Heat::new(self.session(spec)?, self.heat.clone()))
    }

    /// Forget the sessions of a cluster that is gone.
    fn forget(&self, cluster_uuid: &str) {
        if let Ok(mut s) = self.sessions.lock() {
            s.retain(|k, _| !k.starts_with(cluster_uuid));
        }
    }
}

/// A Heat driver of one (server type, OS, COE).
#[derive(Debug)]
pub struct HeatDriver {
    name: &'static str,
    provides: &'static [ClusterKind],
    coe: Coe,
    os: Os,
    ctx: Arc<HeatContext>,
}

/// The Heat drivers this build ships, sharing `ctx`.
pub fn drivers(ctx: Arc<HeatContext>) -> Vec<Arc<dyn Driver>> {
    HEAT_DRIVERS
        .iter()
        .filter_map(|(name, provides)| {
            let kind = provides.first()?;
            Some(Arc::new(HeatDriver {
                name,
                provides,
                coe: Coe::of(kind.coe)?,
                os: Os::of(kind.os)?,
                ctx: ctx.clone(),
            }) as Arc<dyn Driver>)
        })
        .collect()
}

/// A client error as the conductor needs it: transient (unreachable, or
/// a gateway's or server's "unavailable") or not.
fn failed(e: magnum_openstack::OsError) -> DriverError {
    use magnum_openstack::OsError;
    match &e {
        OsError::Unreachable { .. }
        | OsError::Status {
            status: 502..=504, ..
        } => DriverError::Unreachable(e.to_string()),
        _ => DriverError::Failed(e.to_string()),
    }
}

impl Driver for HeatDriver {
    fn name(&self) -> &'static str {
        self.name
    }

    fn provides(&self) -> &'static [ClusterKind] {
        self.provides
    }

    fn needs_trust(&self) -> bool {
        true
    }

    fn template_path(&self) -> Option<String> {
        Some(format!(
            "(built in) {}/ + common/cluster.yaml",
            templates::dir_of(self.coe)
        ))
    }

    fn create(&self, spec: &ClusterSpec, timeout_minutes: i64) -> DriverFuture<'_, String> {
        let spec = spec.clone();
        Box::pin(async move {
            let heat = self.ctx.heat(&spec)?;
            let magnum_url = self.magnum_url(&spec).await;
            let input = self.input(&spec, magnum_url, timeout_minutes)?;
            stacks::create(&heat, &stacks::name_of(&spec.cluster), &input).await
        })
    }

    /// The failed stack is updated with what it has (Heat replaces the
    /// resources that failed); a stack already in progress again is left
    /// to run, and a stack that is gone is made anew.
    fn retry_create(&self, spec: &ClusterSpec, timeout_minutes: i64) -> DriverFuture<'_, String> {
        let spec = spec.clone();
        Box::pin(async move {
            let heat = self.ctx.heat(&spec)?;
            let Some(id) = spec.cluster.stack_id.clone() else {
                return Err(DriverError::Failed(format!(
                    "cluster {} has no stack",
                    spec.cluster.uuid
                )));
            };
            match heat.stack(&id).await.map_err(failed)? {
                None => {
                    let magnum_url = self.magnum_url(&spec).await;
                    let input = self.input(&spec, magnum_url, timeout_minutes)?;
                    stacks::create(&heat, &stacks::name_of(&spec.cluster), &input).await
                }
                Some(s)
                    if s["stack_status"]
                        .as_str()
                        .is_some_and(|st| st.ends_with("_IN_PROGRESS")) =>
                {
                    Ok(id)
                }
                Some(_) => {
                    self.patch_stack(&spec, &id, serde_json::Map::new(), false)
                        .await?;
                    Ok(id)
                }
            }
        })
    }

    fn update(&self, spec: &ClusterSpec, rollback: bool) -> DriverFuture<'_, ()> {
        let spec = spec.clone();
        Box::pin(async move {
            let mut p = serde_json::Map::new();
            p.insert("number_of_workers".into(), json!(worker_count(&spec)));
            // Removals named by an earlier resize do not carry over.
            p.insert("workers_to_remove".into(), json!([]));
            self.patch(&spec, p, rollback).await
        })
    }

    fn resize(
        &self,
        spec: &ClusterSpec,
        nodegroup: &NodeGroup,
        node_count: i64,
        nodes_to_remove: &[String],
    ) -> DriverFuture<'_, ()> {
        let spec = spec.clone();
        let ng = nodegroup.clone();
        let remove = nodes_to_remove.to_vec();
        Box::pin(async move {
            let is_default_worker = spec
                .default_group("worker")
                .is_some_and(|w| w.uuid == ng.uuid);
            let mut p = serde_json::Map::new();
            p.insert("number_of_workers".into(), json!(node_count));
            p.insert(
                "workers_to_remove".into(),
                json!(remove
                    .iter()
                    .map(|n| stacks::removal_ref(n))
                    .collect::<Vec<_>>()),
            );
            if is_default_worker {
                self.patch(&spec, p, false).await
            } else {
                self.patch_nodegroup(&spec, &ng, p).await
            }
        })
    }

    fn upgrade(
        &self,
        spec: &ClusterSpec,
        template: &ClusterTemplate,
        _max_batch_size: i64,
        _nodegroup: &NodeGroup,
    ) -> DriverFuture<'_, ()> {
        let spec = spec.clone();
        let template = template.clone();
        Box::pin(async move {
            // The new template's versions: its COE version label (kube_tag,
            // docker_version, mesos_version) and image.
            let mut p = serde_json::Map::new();
            if let Some(tag) = template
                .labels
                .as_ref()
                .and_then(|l| l.get(params::version_label(self.coe)))
                .and_then(|v| v.as_str())
            {
                p.insert("coe_version".into(), json!(tag));
            }
            if let Some(image) = &template.image_id {
                p.insert("server_image".into(), json!(image));
            }
            self.patch(&spec, p, false).await
        })
    }

    fn delete(&self, spec: &ClusterSpec) -> DriverFuture<'_, ()> {
        let spec = spec.clone();
        Box::pin(async move {
            let Some(stack) = spec.cluster.stack_id.clone() else {
                return Ok(());
            };
            let heat = self.ctx.heat(&spec)?;
            // Node groups' stacks first: they live in the cluster's network.
            for ng in spec
                .nodegroups
                .iter()
                .filter(|n| n.is_default != Some(true))
            {
                stacks::delete(&heat, &stacks::nodegroup_stack_name(&spec.cluster, ng)).await?;
            }
            stacks::delete(&heat, &stack).await
        })
    }

    fn create_nodegroup(
        &self,
        spec: &ClusterSpec,
        ng: &NodeGroup,
    ) -> DriverFuture<'_, Option<String>> {
        let spec = spec.clone();
        let ng = ng.clone();
        Box::pin(async move {
            if ng.role.as_deref() == Some("master") {
                return Err(DriverError::NotAvailable(format!(
                    "Master node groups beyond the default are not available with the {} driver",
                    self.name
                )));
            }
            let heat = self.ctx.heat(&spec)?;
            let cluster_stack = spec
                .cluster
                .stack_id
                .as_deref()
                .ok_or_else(|| DriverError::Failed("the cluster has no stack yet".into()))?;
            let stack = heat
                .stack(cluster_stack)
                .await
                .map_err(failed)?
                .ok_or_else(|| DriverError::Failed(format!("stack {cluster_stack} not found")))?;
            let out = |k: &str| {
                magnum_openstack::heat::output(&stack, k)
                    .cloned()
                    .unwrap_or(json!(""))
            };
            let mut p = serde_json::Map::new();
            p.insert("nodegroup_name".into(), json!(ng.name));
            p.insert(
                "number_of_workers".into(),
                json!(ng.node_count.unwrap_or(1)),
            );
            if let Some(image) = &ng.image_id {
                p.insert("server_image".into(), json!(image));
            }
            if let Some(flavor) = &ng.flavor_id {
                p.insert("worker_flavor".into(), json!(flavor));
            }
            if let Some(size) = ng.docker_volume_size {
                p.insert("docker_volume_size".into(), json!(size));
            }
            for (param, output) in [
                ("network", "network"),
                ("subnet", "subnet"),
                ("security_group", "worker_security_group"),
                ("join_address", "join_address"),
                ("init_address", "init_address"),
                ("bootstrap_token", "bootstrap_token"),
                ("api_address", "api_address_raw"),
            ] {
                p.insert(param.into(), out(output));
            }
            let magnum_url = self.magnum_url(&spec).await;
            let input = self.input_of(
                &spec,
                magnum_url,
                spec.cluster.create_timeout.unwrap_or(60),
                Some(templates::NODEGROUP_TOP),
                p,
            )?;
            let name = stacks::nodegroup_stack_name(&spec.cluster, &ng);
            // The group's own stack: recorded as its stack_id, as
            // upstream's Heat driver records it.
            stacks::create(&heat, &name, &input).await.map(Some)
        })
    }

    fn update_nodegroup(&self, spec: &ClusterSpec, ng: &NodeGroup) -> DriverFuture<'_, ()> {
        let spec = spec.clone();
        let ng = ng.clone();
        Box::pin(async move {
            let mut p = serde_json::Map::new();
            p.insert(
                "number_of_workers".into(),
                json!(ng.node_count.unwrap_or(0)),
            );
            p.insert("workers_to_remove".into(), json!([]));
            if ng.is_default == Some(true) {
                self.patch(&spec, p, false).await
            } else {
                self.patch_nodegroup(&spec, &ng, p).await
            }
        })
    }

    fn delete_nodegroup(&self, spec: &ClusterSpec, ng: &NodeGroup) -> DriverFuture<'_, ()> {
        let spec = spec.clone();
        let ng = ng.clone();
        Box::pin(async move {
            let heat = self.ctx.heat(&spec)?;
            stacks::delete(&heat, &stacks::nodegroup_stack_name(&spec.cluster, &ng)).await
        })
    }

    fn rotate_ca_certificate(&self, spec: &ClusterSpec) -> DriverFuture<'_, ()> {
        let spec = spec.clone();
        Box::pin(async move {
            // The nodes trust the CA named by ca_generation: a new one makes
            // their boot configuration new, so Heat makes them anew and
            // they fetch the new CA and have new certificates signed.
            let generation = json!(spec.cluster.ca_cert_ref.clone().unwrap_or_default());
            for ng in spec
                .nodegroups
                .iter()
                .filter(|n| n.is_default != Some(true))
            {
                let mut p = serde_json::Map::new();
                p.insert("ca_generation".into(), generation.clone());
                self.patch_nodegroup(&spec, ng, p).await?;
            }
            let mut p = serde_json::Map::new();
            p.insert("ca_generation".into(), generation);
            self.patch(&spec, p, false).await
        })
    }

    fn status(&self, spec: &ClusterSpec) -> DriverFuture<'_, Observed> {
        let spec = spec.clone();
        Box::pin(async move {
            let heat = self.ctx.heat(&spec)?;
            let observed = stacks::observe(&heat, &spec, self.coe).await?;
            if observed.action == magnum_core::drivers::Action::Delete
                && observed.progress == magnum_core::drivers::Progress::Complete
            {
                self.ctx.forget(&spec.cluster.uuid);
            }
            Ok(observed)
        })
    }
}

fn worker_count(spec: &ClusterSpec) -> i64 {
    spec.default_group("worker")
        .and_then(|w| w.node_count)
        .unwrap_or(0)
}

impl HeatDriver {
    /// Change some parameters of the cluster's stack (Heat keeps the rest).
    async fn patch(
        &self,
        spec: &ClusterSpec,
        parameters: serde_json::Map<String, serde_json::Value>,
        rollback: bool,
    ) -> Result<(), DriverError> {
        let stack = spec.cluster.stack_id.clone().ok_or_else(|| {
            DriverError::Failed(format!("cluster {} has no stack", spec.cluster.uuid))
        })?;
        self.patch_stack(spec, &stack, parameters, rollback).await
    }

    /// Change some parameters of a node group's own stack.
    async fn patch_nodegroup(
        &self,
        spec: &ClusterSpec,
        ng: &NodeGroup,
        parameters: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), DriverError> {
        let stack = stacks::nodegroup_stack_name(&spec.cluster, ng);
        self.patch_stack(spec, &stack, parameters, false).await
    }

    /// PATCH `stack`'s parameters, acting for the cluster's owner.
    async fn patch_stack(
        &self,
        spec: &ClusterSpec,
        stack: &str,
        parameters: serde_json::Map<String, serde_json::Value>,
        rollback: bool,
    ) -> Result<(), DriverError> {
        let heat = self.ctx.heat(spec)?;
        let input = magnum_openstack::heat::StackInput {
            template: serde_json::Value::Null,
            parameters,
            disable_rollback: !rollback,
            environment: json!({}),
            ..Default::default()
        };
        stacks::patch(&heat, stack, &input).await
    }

    /// Our API's endpoint, as nodes reach it to have certificates signed.
    async fn magnum_url(&self, spec: &ClusterSpec) -> String {
        match self.ctx.session(spec) {
            Ok(s) => self.ctx.magnum.url(&s).await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    fn input(
        &self,
        spec: &ClusterSpec,
        magnum_url: String,
        timeout_minutes: i64,
    ) -> Result<magnum_openstack::heat::StackInput, DriverError> {
        self.input_of(
            spec,
            magnum_url,
            timeout_minutes,
            None,
            serde_json::Map::new(),
        )
    }

    /// The input of the cluster's stack, or with `top` the stack of one of
    /// the COE's other templates; `overrides` win over the cluster's
    /// parameters, and only parameters the template declares are sent.
    fn input_of(
        &self,
        spec: &ClusterSpec,
        magnum_url: String,
        timeout_minutes: i64,
        top: Option<&str>,
        overrides: serde_json::Map<String, serde_json::Value>,
    ) -> Result<magnum_openstack::heat::StackInput, DriverError> {
        let bundle = match top {
            Some(top) => templates::bundle_of(self.coe, self.os, &self.ctx.extra, top)?,
            None => templates::bundle(self.coe, self.os, &self.ctx.extra)?,
        };
        let auth_url = self
            .ctx
            .base
            .as_ref()
            .map(|b| b.identity_url().to_string())
            .unwrap_or_default();
        let mut parameters =
            params::for_cluster(spec, self.coe, &magnum_url, &auth_url, self.ctx.verify_ca)?;
        parameters.extend(overrides);
        let declared = templates::declared(&bundle.template);
        parameters.retain(|k, _| declared.contains(k));
        Ok(magnum_openstack::heat::StackInput {
            template: bundle.template,
            files: bundle.files,
            environment: bundle.environment,
            parameters,
            timeout_mins: (timeout_minutes > 0).then_some(timeout_minutes),
            disable_rollback: true,
        })
    }
}

/// Why [`validation_bodies`] cannot make the bodies.
#[derive(Debug, thiserror::Error)]
pub enum BodiesError {
    #[error(transparent)]
    Environment(#[from] templates::EnvironmentError),
    #[error(transparent)]
    Bundle(#[from] DriverError),
}

/// What Heat is sent for each stack of a (COE, OS) cluster (the
/// cluster's, and a further node group's), without parameters, as bodies
/// of Heat's `POST /validate`, by top template (for tests and tooling).
pub fn validation_bodies(
    coe: Coe,
    os: Os,
    environment_files: &[String],
) -> Result<Vec<(&'static str, serde_json::Value)>, BodiesError> {
    let extra = templates::Extra::load(environment_files)?;
    ["cluster.yaml", templates::NODEGROUP_TOP]
        .into_iter()
        .map(|top| {
            let b = templates::bundle_of(coe, os, &extra, top)?;
            Ok((
                top,
                serde_json::json!({
                    "template": b.template,
                    "files": b.files,
                    "environment": b.environment,
                }),
            ))
        })
        .collect()
}

/// The installer a COE's nodes run (`common/node-lib.sh`, then the
/// COE's `node.sh`), as the boot configuration writes it.
pub fn installer(coe: Coe) -> String {
    let files = templates::files_of(coe);
    let text = |name: &str| {
        files
            .iter()
            .find(|f| f.0 == name)
            .map(|f| f.1)
            .unwrap_or_default()
    };
    format!("{}\n{}", text("node-lib.sh"), text("node.sh"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cluster without a trust names the options to set, or says it was
    /// made without a Keystone token when trusts are configured.
    #[test]
    fn a_missing_trust_names_what_to_set() {
        let conf = Config::parse("[keystone_authtoken]\nauth_url = http://ks/v3\n", "test")
            .expect("a configuration");
        let unset = magnum_openstack::trusts::TrustManager::unset_options(&conf);
        assert_eq!(
            no_trust("c1", &unset),
            "cluster c1 has no trust to act for its owner with: Heat drivers act through a \
             Keystone trust, and none can be made until magnum.conf sets [trust] \
             trustee_domain_admin_id or trustee_domain_admin_name, [trust] \
             trustee_domain_admin_password"
        );
        assert!(no_trust("c1", &[]).contains("created without a Keystone token"));
    }
}
