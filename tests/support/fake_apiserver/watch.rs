//! WATCH: newline-delimited `{"type": ..., "object": ...}` events over a chunked
//! response, from a resourceVersion (410 `Expired` as an ERROR event when the
//! history no longer reaches back), with initial events, bookmarks, selectors,
//! `timeoutSeconds`, and connections that can be dropped on purpose.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::Response;
use serde_json::{json, Value};

use super::errors::ApiError;
use super::http::{json_response, Body, BoxError, Query};
use super::metadata::{partial, Representation};
use super::resources::ResourceType;
use super::selector::{FieldSelector, LabelSelector};
use super::store::{Change, ChangeKind};
use super::Shared;

fn line(kind: &str, object: &Value, rep: Representation) -> Bytes {
    // A metadata-only watch sends each object (bookmarks too) as PartialObjectMetadata.
    let object = match rep {
        Representation::Partial if kind != "ERROR" => partial(object),
        _ => object.clone(),
    };
    let mut s = json!({ "type": kind, "object": object }).to_string();
    s.push('\n');
    Bytes::from(s)
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool, rep: Representation) -> Bytes {
    let mut meta = json!({ "resourceVersion": rv.to_string() });
    if initial_end {
        meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    line(
        "BOOKMARK",
        &json!({ "kind": rt.kind, "apiVersion": rt.api_version(), "metadata": meta }),
        rep,
    )
}

struct Filter {
    ns: Option<String>,
    name: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        let meta = &obj["metadata"];
        self.ns
            .as_deref()
            .is_none_or(|n| meta["namespace"].as_str() == Some(n))
            && self
                .name
                .as_deref()
                .is_none_or(|n| meta["name"].as_str() == Some(n))
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }

    /// The event a watcher with this filter sees for a change (objects entering or
    /// leaving the selection become ADDED / DELETED, as in kube-apiserver).
    fn event<'c>(&self, c: &'c Change) -> Option<(&'static str, &'c Value)> {
        let now = self.matches(&c.object);
        match c.kind {
            ChangeKind::Added => now.then_some(("ADDED", &c.object)),
            ChangeKind::Deleted => now.then_some(("DELETED", &c.object)),
            ChangeKind::Modified => {
                let before = c.old.as_ref().is_some_and(|o| self.matches(o));
                match (before, now) {
                    (true, true) => Some(("MODIFIED", &c.object)),
                    (false, true) => Some(("ADDED", &c.object)),
                    (true, false) => Some(("DELETED", &c.object)),
                    (false, false) => None,
                }
            }
        }
    }
}

/// Starts a watch response.
pub fn serve(
    shared: Arc<Shared>,
    rt: ResourceType,
    ns: Option<String>,
    name: Option<String>,
    query: Query,
    rep: Representation,
) -> Response<Body> {
    let labels = match LabelSelector::parse(query.get("labelSelector").unwrap_or_default()) {
        Ok(l) => l,
        Err(e) => return error(&ApiError::bad_request(e)),
    };
    let fields = match FieldSelector::parse(&rt, query.get("fieldSelector").unwrap_or_default()) {
        Ok(f) => f,
        Err(e) => return error(&ApiError::bad_request(e)),
    };
    let filter = Filter {
        ns,
        name,
        labels,
        fields,
    };
    let initial_events = query.flag("sendInitialEvents");
    if initial_events && query.get("resourceVersionMatch") != Some("NotOlderThan") {
        return error(&ApiError::from_code(
            422,
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ));
    }
    let from = match query.get("resourceVersion") {
        None | Some("") | Some("0") => None,
        Some(rv) => match rv.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return error(&ApiError::bad_request(format!(
                    "invalid resource version: {rv}"
                )))
            }
        },
    };
    let from = if initial_events { None } else { from };
    let bookmarks = query.flag("allowWatchBookmarks");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(256);
    let subscribed = shared
        .store
        .lock()
        .expect("store lock")
        .subscribe(&rt, from);
    let (backlog, mut changes, snapshot_rv) = match subscribed {
        Ok(s) => s,
        Err(e) if e.code == 410 => {
            // kube-apiserver answers 200 and sends the 410 as an ERROR event.
            let _ = tx.try_send(Ok(Frame::data(line("ERROR", &e.to_status(), rep))));
            drop(tx);
            return stream_response(rx);
        }
        Err(e) => return error(&e),
    };
    let interval = shared.bookmark_interval;
    tokio::spawn(async move {
        for c in &backlog {
            if let Some((kind, obj)) = filter.event(c) {
                if tx
                    .send(Ok(Frame::data(line(kind, obj, rep))))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        if initial_events
            && tx
                .send(Ok(Frame::data(bookmark(&rt, snapshot_rv, true, rep))))
                .await
                .is_err()
        {
            return;
        }
        let deadline = tokio::time::sleep(timeout.unwrap_or(Duration::from_secs(1800)));
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                biased;
                _ = &mut deadline => return,
                c = changes.recv() => match c {
                    Some(c) => {
                        if let Some((kind, obj)) = filter.event(&c) {
                            if tx.send(Ok(Frame::data(line(kind, obj, rep)))).await.is_err() {
                                return;
                            }
                        }
                    }
                    None => {
                        // The store dropped this watch: abort the connection mid-stream.
                        let _ = tx.send(Err("watch dropped by the fake API server".into())).await;
                        return;
                    }
                },
                _ = ticker.tick(), if bookmarks => {
                    let rv = {
                        let store = shared.store.lock().expect("store lock");
                        changes.is_empty().then_some(store.rv)
                    };
                    if let Some(rv) = rv {
                        if tx.send(Ok(Frame::data(bookmark(&rt, rv, false, rep)))).await.is_err() {
                            return;
                        }
                    }
                }
                _ = tx.closed() => return,
            }
        }
    });
    stream_response(rx)
}

fn error(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.to_status())
}

fn stream_response(
    rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, BoxError>>,
) -> Response<Body> {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(StreamBody::new(stream).boxed())
        .expect("a valid response")
}
