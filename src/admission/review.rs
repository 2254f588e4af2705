//! What an AdmissionReview asks about: the images of the pod, or of the pod template, in the
//! object under admission. Pure: JSON in, container images out.

use crate::scanner::pods::{CachedContainer, CachedPodSpec};
use kube::core::admission::{AdmissionRequest, Operation};
use kube::core::{DynamicObject, GroupVersionKind};
use serde_json::Value;
use std::collections::BTreeSet;

/// One container image of the object under admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerImage {
    /// Where it is in the object, for people: `containers[app]`, `initContainers[migrate]`.
    pub container: String,
    /// The image as written.
    pub image: String,
    /// The JSON pointer of the image in the object (RFC 6901), where a patch replaces it:
    /// `/spec/template/spec/containers/0/image`.
    pub pointer: String,
}

/// Why a request cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    #[error("the {kind} has no pod spec at {path}")]
    NoPodSpec { kind: String, path: &'static str },
    #[error("the {kind}'s pod spec at {path} cannot be read: {detail}")]
    BadPodSpec { kind: String, path: &'static str, detail: String },
}

impl ReviewError {
    pub fn reason(&self) -> &'static str {
        match self {
            ReviewError::NoPodSpec { .. } => "NoPodSpec",
            ReviewError::BadPodSpec { .. } => "BadPodSpec",
        }
    }
}

/// Where the pod spec of each kind the webhook is registered for sits: a Pod's own `spec`,
/// the pod template of the workload kinds, a CronJob's job template. `None` for any other
/// kind (the webhook admits it untouched).
pub fn pod_spec_path(gvk: &GroupVersionKind) -> Option<&'static str> {
    match (gvk.group.as_str(), gvk.kind.as_str()) {
        ("", "Pod") => Some("/spec"),
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet") | ("batch", "Job") => {
            Some("/spec/template/spec")
        }
        ("batch", "CronJob") => Some("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

/// Every container image (init, regular, ephemeral) of the pod spec in `object`.
pub fn images_of(gvk: &GroupVersionKind, object: &Value) -> Result<Vec<ContainerImage>, ReviewError> {
    let Some(path) = pod_spec_path(gvk) else { return Ok(vec![]) };
    let kind = gvk.kind.clone();
    let spec = object.pointer(path).ok_or_else(|| ReviewError::NoPodSpec { kind: kind.clone(), path })?;
    let spec: CachedPodSpec = serde_json::from_value(spec.clone()).map_err(|e| ReviewError::BadPodSpec {
        kind,
        path,
        detail: e.to_string(),
    })?;
    let list = |field: &str, cs: &[CachedContainer]| -> Vec<ContainerImage> {
        cs.iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let image = c.image.clone()?;
                let pointer = format!("{path}/{field}/{i}/image");
                Some(ContainerImage { container: format!("{field}[{}]", c.name), image, pointer })
            })
            .collect()
    };
    let mut out = list("initContainers", spec.init_containers.as_deref().unwrap_or_default());
    out.extend(list("containers", &spec.containers));
    out.extend(list("ephemeralContainers", spec.ephemeral_containers.as_deref().unwrap_or_default()));
    Ok(out)
}

/// The images a request asks to admit: on CREATE, every image of the object; on UPDATE,
/// only the images the old object did not already have, so that relabelling, scaling or
/// annotating a workload is never refused for an image admitted before (the scans watch
/// those). Other operations (DELETE, CONNECT) admit nothing new.
pub fn images_to_check(request: &AdmissionRequest<DynamicObject>) -> Result<Vec<ContainerImage>, ReviewError> {
    let as_json = |o: &Option<DynamicObject>| o.as_ref().map(|o| serde_json::to_value(o).unwrap_or(Value::Null));
    let Some(object) = as_json(&request.object) else { return Ok(vec![]) };
    let images = images_of(&request.kind, &object)?;
    match request.operation {
        Operation::Create => Ok(images),
        Operation::Update => {
            let before: BTreeSet<String> = match as_json(&request.old_object) {
                // An old object that cannot be read admits nothing as known.
                Some(old) => images_of(&request.kind, &old).unwrap_or_default().into_iter().map(|c| c.image).collect(),
                None => BTreeSet::new(),
            };
            Ok(images.into_iter().filter(|c| !before.contains(&c.image)).collect())
        }
        Operation::Delete | Operation::Connect => Ok(vec![]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gvk(group: &str, kind: &str) -> GroupVersionKind {
        GroupVersionKind::gvk(group, "v1", kind)
    }

    fn pod_spec() -> Value {
        json!({
            "initContainers": [{"name": "migrate", "image": "registry.example/migrate:v1"}],
            "containers": [{"name": "app", "image": "registry.example/app:v1"}],
            "ephemeralContainers": [{"name": "debug", "image": "busybox"}]
        })
    }

    #[test]
    fn every_kind_has_its_pod_spec_read_with_init_and_ephemeral_containers() {
        let template = json!({"template": {"spec": pod_spec()}});
        let cases = [
            (gvk("", "Pod"), json!({"spec": pod_spec()})),
            (gvk("apps", "Deployment"), json!({"spec": template})),
            (gvk("apps", "StatefulSet"), json!({"spec": template})),
            (gvk("apps", "DaemonSet"), json!({"spec": template})),
            (gvk("apps", "ReplicaSet"), json!({"spec": template})),
            (gvk("batch", "Job"), json!({"spec": template})),
            (gvk("batch", "CronJob"), json!({"spec": {"jobTemplate": {"spec": template}}})),
        ];
        for (gvk, object) in cases {
            let images = images_of(&gvk, &object).unwrap();
            let got: Vec<(&str, &str)> = images.iter().map(|c| (c.container.as_str(), c.image.as_str())).collect();
            assert_eq!(
                got,
                [
                    ("initContainers[migrate]", "registry.example/migrate:v1"),
                    ("containers[app]", "registry.example/app:v1"),
                    ("ephemeralContainers[debug]", "busybox"),
                ],
                "{}",
                gvk.kind
            );
            // Each pointer leads back to the image in the object.
            for c in &images {
                assert_eq!(object.pointer(&c.pointer).and_then(Value::as_str), Some(c.image.as_str()), "{}", c.pointer);
            }
        }
    }

    #[test]
    fn other_kinds_have_no_images_and_a_missing_template_is_an_error() {
        assert_eq!(images_of(&gvk("", "ConfigMap"), &json!({"data": {}})).unwrap(), vec![]);
        assert_eq!(images_of(&gvk("apps", "Pod"), &json!({"spec": pod_spec()})).unwrap(), vec![]);
        let e = images_of(&gvk("apps", "Deployment"), &json!({"spec": {}})).unwrap_err();
        assert_eq!(e.reason(), "NoPodSpec");
        assert!(e.to_string().contains("/spec/template/spec"), "{e}");
        let e = images_of(&gvk("", "Pod"), &json!({"spec": {"containers": "app"}})).unwrap_err();
        assert_eq!(e.reason(), "BadPodSpec");
    }

    fn request(operation: &str, object: Value, old: Option<Value>) -> AdmissionRequest<DynamicObject> {
        let review = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u1",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "name": "p", "namespace": "team",
                "operation": operation,
                "userInfo": {"username": "dev"},
                "object": object,
                "oldObject": old,
            }
        });
        let review: kube::core::admission::AdmissionReview<DynamicObject> = serde_json::from_value(review).unwrap();
        review.try_into().unwrap()
    }

    fn pod(images: &[&str]) -> Value {
        let containers: Vec<Value> =
            images.iter().enumerate().map(|(i, im)| json!({"name": format!("c{i}"), "image": im})).collect();
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    #[test]
    fn an_update_checks_only_images_the_old_object_did_not_have() {
        let created = images_to_check(&request("CREATE", pod(&["a:1", "b:1"]), None)).unwrap();
        assert_eq!(created.len(), 2);
        let updated = images_to_check(&request("UPDATE", pod(&["a:1", "b:2"]), Some(pod(&["a:1", "b:1"])))).unwrap();
        let images: Vec<&str> = updated.iter().map(|c| c.image.as_str()).collect();
        assert_eq!(images, ["b:2"]);
        let relabelled = images_to_check(&request("UPDATE", pod(&["a:1"]), Some(pod(&["a:1"])))).unwrap();
        assert!(relabelled.is_empty());
    }
}
