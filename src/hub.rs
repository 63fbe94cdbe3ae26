//! Models by hub id (`org/name`, optionally at a revision), in the Hugging Face hub's URL layout
//! `{base}/{org}/{name}/resolve/{revision}/{file}` — the public hub by default, or any mirror in
//! the same layout. What a model's folder holds ([`model_files`]), where a file is, and what the
//! hub's response headers say about it (size, checksum): shared by `wgpt download` and the page.

use thiserror::Error;

/// The public hub.
pub const DEFAULT_HUB: &str = "https://huggingface.co";
/// The revision when none is given.
pub const DEFAULT_REVISION: &str = "main";

/// Files a model folder needs: the config, the tokenizer, and its weights (below).
pub const REQUIRED: [&str; 2] = ["config.json", "tokenizer.json"];
/// Files used when present: the chat template and special tokens, the end tokens.
pub const OPTIONAL: [&str; 3] = ["tokenizer_config.json", "chat_template.jinja", "generation_config.json"];
/// The weights: one file, or this index and the shards it names.
pub const WEIGHTS: &str = "model.safetensors";
pub const INDEX: &str = "model.safetensors.index.json";

#[derive(Debug, Error, PartialEq)]
pub enum HubError {
    #[error("{0:?} is not a model id: expected ORG/NAME (letters, digits, '-', '_', '.'; not starting with '.')")]
    BadId(String),
    #[error("{0:?} is not a revision: letters, digits, '-', '_', '.' and '/' (not '..')")]
    BadRevision(String),
    #[error("{0:?} is not a GGUF file of the model: a path in its folder ending in .gguf")]
    BadFile(String),
}

/// A `.gguf` file's path inside a model's folder (`model-q4_k_m.gguf`, `gguf/model.gguf`), checked
/// like an id: nothing that could climb out of the folder or change the URL.
pub fn gguf_file(path: &str) -> Result<String, HubError> {
    if path.ends_with(".gguf") && path.split('/').all(segment_ok) {
        Ok(path.into())
    } else {
        Err(HubError::BadFile(path.into()))
    }
}

/// A model on a hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubId {
    pub org: String,
    pub name: String,
    pub revision: String,
}

/// One path segment of an id: what the hub allows, and nothing that could climb out of a folder.
fn segment_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 96
        && !s.starts_with('.')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl HubId {
    /// `org/name` at `revision` (default `main`).
    pub fn parse(id: &str, revision: Option<&str>) -> Result<Self, HubError> {
        let (org, name) = id.split_once('/').ok_or_else(|| HubError::BadId(id.into()))?;
        if !segment_ok(org) || !segment_ok(name) {
            return Err(HubError::BadId(id.into()));
        }
        let revision = revision.unwrap_or(DEFAULT_REVISION);
        if revision.split('/').any(|s| !segment_ok(s)) {
            return Err(HubError::BadRevision(revision.into()));
        }
        Ok(HubId { org: org.into(), name: name.into(), revision: revision.into() })
    }

    /// Where `file` of this model is on the hub at `base`.
    pub fn url(&self, base: &str, file: &str) -> String {
        format!("{}/{}/{}/resolve/{}/{file}", base.trim_end_matches('/'), self.org, self.name, self.revision)
    }

    /// `org/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.org, self.name)
    }

    /// The folder of this model under a cache root: `{root}/{org}/{name}/{revision}`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn cache_dir(&self, root: &std::path::Path) -> std::path::PathBuf {
        let mut dir = root.join(&self.org).join(&self.name);
        for part in self.revision.split('/') {
            dir.push(part);
        }
        dir
    }
}

/// The files to fetch after `config.json`, given the weights index if the model has one: the
/// tokenizer, the weights (the index's shards, or `model.safetensors`), then the optional files.
/// Returns (required, optional).
pub fn model_files(index: Option<&[u8]>) -> Result<(Vec<String>, Vec<String>), crate::bundle::BundleError> {
    let mut required: Vec<String> = REQUIRED.iter().map(|s| s.to_string()).collect();
    match index {
        Some(index) => {
            required.push(INDEX.into());
            required.extend(crate::loaded::shard_names(index)?);
        }
        None => required.push(WEIGHTS.into()),
    }
    Ok((required, OPTIONAL.iter().map(|s| s.to_string()).collect()))
}

/// What the hub says about a file in its response headers. The hub answers for a large (LFS)
/// file with `X-Linked-Size` and `X-Linked-Etag` (the SHA-256 of the content); a plain server
/// with `Content-Length` and maybe an `ETag`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remote {
    pub size: Option<u64>,
    /// The SHA-256 of the content, when the hub gives one.
    pub sha256: Option<String>,
}

impl Remote {
    /// From headers, looked up case-insensitively by `header`.
    pub fn from_headers(header: impl Fn(&str) -> Option<String>) -> Self {
        let size = header("x-linked-size").or_else(|| header("content-length")).and_then(|s| s.trim().parse().ok());
        let sha256 = header("x-linked-etag")
            .or_else(|| header("etag"))
            .map(|e| e.trim().trim_start_matches("W/").trim_matches('"').to_ascii_lowercase())
            .filter(|e| e.len() == 64 && e.chars().all(|c| c.is_ascii_hexdigit()));
        Remote { size, sha256 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_files_are_paths_inside_the_folder() {
        assert_eq!(gguf_file("qwen2.5-0.5b-instruct-q4_k_m.gguf").unwrap(), "qwen2.5-0.5b-instruct-q4_k_m.gguf");
        assert!(gguf_file("sub/model.gguf").is_ok());
        for bad in ["model.safetensors", "../x.gguf", "/x.gguf", "a//b.gguf", "x.gguf?y", ".gguf", "a b.gguf"] {
            assert_eq!(gguf_file(bad), Err(HubError::BadFile(bad.into())), "{bad}");
        }
    }

    #[test]
    fn ids_are_checked_and_placed_in_the_hub_layout() {
        let id = HubId::parse("HuggingFaceTB/SmolLM2-360M-Instruct", None).unwrap();
        assert_eq!(
            id.url("https://huggingface.co/", "config.json"),
            "https://huggingface.co/HuggingFaceTB/SmolLM2-360M-Instruct/resolve/main/config.json"
        );
        let at = HubId::parse("Qwen/Qwen3-0.6B", Some("refs/pr/1")).unwrap();
        assert_eq!(at.url("http://mirror", "a.json"), "http://mirror/Qwen/Qwen3-0.6B/resolve/refs/pr/1/a.json");
        for bad in ["noslash", "a/b/c", "../x", "a/..", "a/.hidden", "a/b c", "/b", "a/", "a/b?x=1", "a/b#f"] {
            assert!(HubId::parse(bad, None).is_err(), "{bad}");
        }
        for bad in ["..", "a/../b", "", "a b", "x/"] {
            assert!(HubId::parse("a/b", Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_hub_headers_give_size_and_checksum() {
        let sha = "a".repeat(64);
        let lfs = [("x-linked-size", "1234"), ("content-length", "99"), ("x-linked-etag", &format!("\"{sha}\""))];
        let get = |h: &[(&str, &str)], k: &str| h.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        assert_eq!(Remote::from_headers(|k| get(&lfs, k)), Remote { size: Some(1234), sha256: Some(sha) });
        let plain = [("content-length", "99"), ("etag", "\"5f3-abc\"")];
        assert_eq!(Remote::from_headers(|k| get(&plain, k)), Remote { size: Some(99), sha256: None });
    }

    #[test]
    fn a_sharded_model_lists_its_shards() {
        let index =
            br#"{"weight_map": {"a": "model-00002-of-00002.safetensors", "b": "model-00001-of-00002.safetensors"}}"#;
        let (required, optional) = model_files(Some(index)).unwrap();
        assert_eq!(
            required,
            [
                "config.json",
                "tokenizer.json",
                INDEX,
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors"
            ]
        );
        assert_eq!(optional.len(), 3);
        assert!(model_files(Some(br#"{"weight_map": {"a": "../../etc/passwd"}}"#)).is_err());
        assert_eq!(model_files(None).unwrap().0, ["config.json", "tokenizer.json", WEIGHTS]);
    }
}
