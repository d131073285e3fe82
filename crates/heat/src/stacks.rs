//! Stacks: made once per cluster, and read back into what the conductor
//! records.

use magnum_core::drivers::{Action, ClusterSpec, DriverError, DriverEvent, Observed, Progress};
use magnum_core::objects::{Cluster, NodeGroup};
use magnum_openstack::heat::{output, Heat, StackInput};
use serde_json::Value;

use crate::Coe;

use crate::failed;

/// A cluster's stack name: its name (as far as Heat allows, 20 characters)
/// and the start of its uuid, so a retried create finds the stack a dead
/// conductor already made.
pub fn name_of(c: &Cluster) -> String {
    let base: String = c
        .name
        .as_deref()
        .unwrap_or("cluster")
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '-' || ch == '.' {
                ch
            } else {
                '-'
            }
        })
        .take(20)
        .collect();
    let base = if base.starts_with(|ch: char| ch.is_ascii_alphabetic()) {
        base
    } else {
        format!("c{base}")
    };
    format!("{base}-{}", c.uuid.chars().take(12).collect::<String>())
}

/// The stack of a node group beyond the defaults: the cluster's stack name
/// and the group's.
pub fn nodegroup_stack_name(c: &Cluster, ng: &NodeGroup) -> String {
    let ng_name: String = ng
        .name
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '-' {
                ch
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    format!("{}-{ng_name}", name_of(c))
}

/// What a resource group's removal policy names for a node to remove: the
/// member's index when given the node's name (`<cluster>-node-<index>`),
/// else the server id as given (members' reference ids are their
/// servers').
pub fn removal_ref(node: &str) -> String {
    match node.rsplit_once("-node-") {
        Some((_, index)) if !index.is_empty() && index.chars().all(|c| c.is_ascii_digit()) => {
            index.to_string()
        }
        _ => node.to_string(),
    }
}

/// How long a change may take to show in a stack's status.
const START_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Heat starts an update or a delete after answering; until it does, the
/// stack still shows the last operation's outcome, which a status sync
/// would take for this one's. So wait until the stack shows it.
async fn wait_started(
    heat: &Heat,
    id: &str,
    started: impl Fn(Option<&Value>) -> bool,
) -> Result<(), DriverError> {
    let deadline = tokio::time::Instant::now() + START_WAIT;
    loop {
        let s = heat.stack(id).await.map_err(failed)?;
        if started(s.as_ref()) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(DriverError::Failed(format!(
                "Heat did not start the change of stack {id} within {} seconds",
                START_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

/// PATCH a stack's parameters; returns once Heat shows the update.
pub async fn patch(heat: &Heat, id: &str, input: &StackInput) -> Result<(), DriverError> {
    let before = heat
        .stack(id)
        .await
        .map_err(failed)?
        .ok_or_else(|| DriverError::Failed(format!("Stack {id} not found")))?;
    let was = before["updated_time"].clone();
    heat.update_stack(id, input, true).await.map_err(failed)?;
    wait_started(heat, id, |s| {
        s.is_some_and(|s| {
            s["updated_time"] != was
                || s["stack_status"]
                    .as_str()
                    .is_some_and(|st| st.ends_with("_IN_PROGRESS"))
        })
    })
    .await
}

/// Delete a stack (one already gone is fine); returns once Heat shows the
/// delete.
pub async fn delete(heat: &Heat, id: &str) -> Result<(), DriverError> {
    heat.delete_stack(id).await.map_err(failed)?;
    wait_started(heat, id, |s| {
        s.is_none_or(|s| {
            s["stack_status"]
                .as_str()
                .is_some_and(|st| st.starts_with("DELETE_"))
        })
    })
    .await
}

/// Create the stack, or adopt the one made by an earlier attempt: found
/// by name first, and again when Heat answers the create with 409 (an
/// attempt elsewhere created it meanwhile).
pub async fn create(heat: &Heat, name: &str, input: &StackInput) -> Result<String, DriverError> {
    if let Some(id) = existing(heat, name).await? {
        tracing::info!("stack {name} exists already ({id}); adopting it");
        return Ok(id);
    }
    match heat.create_stack(name, input).await {
        Err(magnum_openstack::OsError::Status { status: 409, .. }) => {
            match existing(heat, name).await? {
                Some(id) => {
                    tracing::info!("stack {name} was created meanwhile ({id}); adopting it");
                    Ok(id)
                }
                None => Err(DriverError::Unreachable(format!(
                    "Heat refused to create stack {name} as a duplicate, yet has none by that name"
                ))),
            }
        }
        other => other.map_err(failed),
    }
}

/// The id of the live stack named `name`, if there is one.
async fn existing(heat: &Heat, name: &str) -> Result<Option<String>, DriverError> {
    Ok(heat
        .stack(name)
        .await
        .map_err(failed)?
        .filter(|s| s["stack_status"] != "DELETE_COMPLETE")
        .and_then(|s| s["id"].as_str().map(str::to_string)))
}

fn action_of(stem: &str) -> Action {
    match stem {
        "CREATE" => Action::Create,
        "DELETE" => Action::Delete,
        "ROLLBACK" => Action::Rollback,
        _ => Action::Update,
    }
}

fn cluster_action(c: &Cluster) -> Action {
    action_of(
        c.status
            .as_deref()
            .and_then(|s| s.split('_').next())
            .unwrap_or("CREATE"),
    )
}

/// A failure reason without Heat's `Error: resources.a.resources.b: `
/// prefixes.
fn bare_reason(reason: &str) -> &str {
    let mut r = reason;
    while let Some(i) = r.find("resources.") {
        match r[i..].find(": ") {
            Some(j) => r = &r[i + j + 2..],
            None => break,
        }
    }
    r.trim()
}

/// Why a stack failed: each failed resource none of whose own resources
/// failed (the root causes), as `<path>: <reason>`; else the stack's
/// reason.
/// With it, each of those resources as a driver event.
async fn failure_reason(heat: &Heat, id: &str, stack: &Value) -> (String, Vec<DriverEvent>) {
    let stack_reason = stack["stack_status_reason"]
        .as_str()
        .unwrap_or("the stack failed")
        .to_string();
    let Ok(resources) = heat.resources(id, 5).await else {
        return (stack_reason, Vec::new());
    };
    let mut events = Vec::new();
    let failed: Vec<&Value> = resources
        .iter()
        .filter(|r| {
            r["resource_status"]
                .as_str()
                .is_some_and(|s| s.ends_with("FAILED"))
        })
        .collect();
    let parent_of = |r: &Value| r["parent_resource"].as_str().map(str::to_string);
    let name_of = |r: &Value| r["resource_name"].as_str().unwrap_or("?").to_string();
    let leaves: Vec<String> = failed
        .iter()
        .filter(|r| {
            let name = name_of(r);
            !failed
                .iter()
                .any(|o| parent_of(o).as_deref() == Some(name.as_str()))
        })
        .map(|r| {
            // The path down to it: parent.child.
            let mut path = vec![name_of(r)];
            let mut cur = parent_of(r);
            while let Some(p) = cur {
                path.push(p.clone());
                cur = resources
                    .iter()
                    .find(|o| o["resource_name"] == p.as_str())
                    .and_then(parent_of);
                if path.len() > 8 {
                    break;
                }
            }
            path.reverse();
            let reason = bare_reason(r["resource_status_reason"].as_str().unwrap_or(""));
            events.push(DriverEvent {
                resource: path.join("."),
                status: r["resource_status"]
                    .as_str()
                    .unwrap_or("FAILED")
                    .to_string(),
                reason: reason.to_string(),
                nodegroup_uuid: None,
            });
            format!("{}: {}", path.join("."), reason)
        })
        .collect();
    if leaves.is_empty() {
        (stack_reason, events)
    } else {
        (leaves.join("; "), events)
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().filter(|s| !s.is_empty()).map(str::to_string))
            .collect(),
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Where a COE's clients connect, as upstream's drivers report it.
fn api_address(coe: Coe, ip: &str, tls: bool) -> String {
    match (coe, tls) {
        (Coe::Kubernetes, true) => format!("https://{ip}:6443"),
        (Coe::Kubernetes, false) => format!("http://{ip}:8080"),
        (Coe::Swarm, true) => format!("tcp://{ip}:2376"),
        (Coe::Swarm, false) => format!("tcp://{ip}:2375"),
        (Coe::Mesos, _) => format!("http://{ip}:8080"),
    }
}

/// What the cluster's stack says now.
pub async fn observe(heat: &Heat, spec: &ClusterSpec, coe: Coe) -> Result<Observed, DriverError> {
    let c = &spec.cluster;
    let id = match &c.stack_id {
        Some(id) => id.clone(),
        // No stack recorded: one may exist from a create cut short.
        None => match heat.stack(&name_of(c)).await.map_err(failed)? {
            Some(s) => s["id"].as_str().unwrap_or_default().to_string(),
            None if cluster_action(c) == Action::Delete => {
                return Ok(Observed::new(Action::Delete, Progress::Complete))
            }
            None => return Ok(Observed::new(cluster_action(c), Progress::InProgress)),
        },
    };
    let Some(stack) = heat.stack(&id).await.map_err(failed)? else {
        return Ok(if cluster_action(c) == Action::Delete {
            Observed::new(Action::Delete, Progress::Complete)
        } else {
            Observed::new(
                cluster_action(c),
                Progress::Failed(format!("Stack {id} not found")),
            )
        });
    };
    let status = stack["stack_status"].as_str().unwrap_or("UNKNOWN");
    let (stem, state) = status.split_once('_').unwrap_or((status, ""));
    let mut action = action_of(stem);
    if action == Action::Update && cluster_action(c) == Action::Create {
        // A create retried from CREATE_FAILED is an update of the failed
        // stack: it is the create that is in progress.
        action = Action::Create;
    }
    let mut failed_resources = Vec::new();
    let progress = match state {
        "COMPLETE" => Progress::Complete,
        "FAILED" => {
            let (reason, events) = failure_reason(heat, &id, &stack).await;
            failed_resources = events;
            Progress::Failed(reason)
        }
        _ => Progress::InProgress,
    };
    let mut o = Observed::new(action, progress);
    o.events = failed_resources;
    if o.progress == Progress::Complete && action != Action::Delete {
        let tls = stack["parameters"]["tls_disabled"] != "True"
            && stack["parameters"]["tls_disabled"] != "true";
        o.api_address = output(&stack, "api_address")
            .and_then(Value::as_str)
            .filter(|ip| !ip.is_empty())
            .map(|ip| api_address(coe, ip, tls));
        if let Some(m) = spec.default_group("master") {
            o.node_addresses
                .insert(m.uuid.clone(), strings(output(&stack, "master_addresses")));
        }
        if let Some(w) = spec.default_group("worker") {
            o.node_addresses
                .insert(w.uuid.clone(), strings(output(&stack, "worker_addresses")));
        }
        o.coe_version = stack["parameters"]["coe_version"]
            .as_str()
            .filter(|v| !v.is_empty())
            .map(str::to_string);
    }
    if action == Action::Delete {
        return Ok(o);
    }
    // Node groups of their own: the cluster is as far as its slowest.
    if cluster_action(c) == Action::Update && o.action == Action::Create {
        // Untouched since created: a node group's operation is running.
        o.action = Action::Update;
    }
    for ng in spec
        .nodegroups
        .iter()
        .filter(|n| n.is_default != Some(true))
    {
        let ng_stack = heat
            .stack(&nodegroup_stack_name(c, ng))
            .await
            .map_err(failed)?;
        let Some(ng_stack) = ng_stack else {
            if ng.status.as_deref() == Some("CREATE_IN_PROGRESS")
                && o.progress == Progress::Complete
            {
                o.progress = Progress::InProgress;
            }
            continue;
        };
        let status = ng_stack["stack_status"].as_str().unwrap_or("UNKNOWN");
        if status.ends_with("_IN_PROGRESS") {
            if o.progress == Progress::Complete {
                o.progress = Progress::InProgress;
            }
        } else if status.ends_with("_FAILED") {
            let id = ng_stack["id"].as_str().unwrap_or_default().to_string();
            let (reason, events) = failure_reason(heat, &id, &ng_stack).await;
            o.progress = Progress::Failed(format!("node group {}: {reason}", ng.name));
            o.events.extend(events.into_iter().map(|mut e| {
                e.nodegroup_uuid = Some(ng.uuid.clone());
                e
            }));
        } else if status != "DELETE_COMPLETE" {
            o.node_addresses.insert(
                ng.uuid.clone(),
                strings(output(&ng_stack, "worker_addresses")),
            );
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn heat_prefixes_leave_the_reason() {
        assert_eq!(
            bare_reason("ValueError: resources.nova_boot: Test Resource failed nova_boot"),
            "Test Resource failed nova_boot"
        );
        assert_eq!(
            bare_reason("Error: resources.a.resources.b: boom: really"),
            "boom: really"
        );
        assert_eq!(bare_reason("plain"), "plain");
    }

    #[test]
    fn stack_names_are_heat_names_and_stable() {
        let mut c = Cluster {
            uuid: "0123456789ab-cdef".into(),
            name: Some("my_cluster with a very long name".into()),
            ..Default::default()
        };
        assert_eq!(name_of(&c), "my-cluster-with-a-ve-0123456789ab");
        c.name = Some("9lives".into());
        assert_eq!(name_of(&c), "c9lives-0123456789ab");
        c.name = None;
        assert_eq!(name_of(&c), "cluster-0123456789ab");
    }
}
