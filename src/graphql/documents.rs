//! Parsed GraphQL documents, kept by their text. Frontends send the same
//! few documents over and over, so parsing each once saves most of the cost
//! of a small query; validation (depth, complexity, aliases, …) still runs
//! on every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::parser::types::ExecutableDocument;

/// Documents longer than this are parsed every time (a 100,000-id bulk
/// update written inline would only fill the cache).
const MAX_CACHED_QUERY_BYTES: usize = 16 * 1024;
/// Distinct documents kept; when full, the cache starts over.
const MAX_CACHED_DOCUMENTS: usize = 512;

/// A bounded cache of parsed documents, shared by the server's requests.
#[derive(Clone, Debug, Default)]
pub struct DocumentCache(Arc<Mutex<HashMap<String, ExecutableDocument>>>);

impl DocumentCache {
    /// Attaches the parsed form of the request's document, parsing and
    /// keeping it on first sight. A document that does not parse is left
    /// to the executor, which reports the error.
    pub fn prepare(&self, request: &mut async_graphql::Request) {
        if request.query.len() > MAX_CACHED_QUERY_BYTES {
            return;
        }
        if let Some(doc) = self.get(&request.query) {
            request.set_parsed_query(doc);
            return;
        }
        let Ok(doc) = async_graphql::parser::parse_query(&request.query) else {
            return;
        };
        if let Ok(mut docs) = self.0.lock() {
            if docs.len() >= MAX_CACHED_DOCUMENTS {
                docs.clear();
            }
            docs.insert(request.query.clone(), doc.clone());
        }
        request.set_parsed_query(doc);
    }

    fn get(&self, query: &str) -> Option<ExecutableDocument> {
        self.0.lock().ok()?.get(query).cloned()
    }
}
