//! The API described by OpenAPI 3.1, generated from the handlers' own
//! `#[utoipa::path]` annotations as the router registers them (so a route
//! cannot exist undocumented), plus what the layers add to every route: the
//! tenant header and the errors any request may meet. Served at
//! `/api/schema.json`, printed by `chatter openapi`, read at `/api/docs`.

use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use utoipa::Modify;
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Required, ResponseBuilder, Schema};

use crate::config::{ChatSettings, Settings};
use crate::error::ErrorBody;

/// What the derive contributes: the title, the security scheme, and the
/// schemas every error shares.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Chatter API",
        description = "Multi-tenant FAQ chatbot platform. Tenant routes name their tenant \
                       by the `X-Client-ID` header (or by a tenant domain as `Host`). Errors are \
                       `{\"error\": {\"code\", \"message\"}}`.",
        license(name = "MIT")
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "visitor", description = "What the widget calls: no account"),
        (name = "account", description = "Sign-in and the signed-in user"),
        (name = "bot", description = "A tenant's bot, FAQs, conversations and analytics"),
        (name = "operator", description = "The platform: tenants, domains, users"),
        (name = "billing", description = "Plans, usage and Razorpay subscriptions"),
        (name = "health", description = "Probes")
    )
)]
struct Base;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Which layers a group of routes sits behind, so its operations can be
/// given what those layers add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layers {
    /// Outside the Host check: `/healthz`, `/metrics`.
    Open,
    /// Behind the Host check.
    HostChecked,
    /// Behind the Host check and tenant resolution.
    Tenant,
}

/// The base document with the router's paths merged in, and the limits
/// that are settings written in (the annotations can only hold constants).
pub fn document(paths: OpenApi, chat: &ChatSettings) -> OpenApi {
    let mut api = <Base as utoipa::OpenApi>::openapi().merge_from(paths);
    set_max_length(&mut api, "ChatRequest", "message", chat.max_message_chars);
    api
}

fn set_max_length(api: &mut OpenApi, schema: &str, property: &str, max: usize) {
    let field = api
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut(schema))
        .and_then(|s| match s {
            RefOr::T(Schema::Object(object)) => object.properties.get_mut(property),
            _ => None,
        });
    if let Some(RefOr::T(Schema::Object(field))) = field {
        field.max_length = Some(max);
    }
}

/// Adds to every operation of `api` what its layers may answer.
pub fn apply_layers(api: &mut OpenApi, layers: Layers) {
    for item in api.paths.paths.values_mut() {
        for operation in operations(item) {
            if layers != Layers::Open {
                add_error(
                    operation,
                    400,
                    "Bad input, or a `Host` that is not served here",
                );
                add_error(
                    operation,
                    503,
                    "The database or the model is busy or not ready; see `Retry-After`",
                );
            }
            if operation.request_body.is_some() {
                add_error(operation, 413, "The body is larger than 64 KiB");
            }
            if layers == Layers::Tenant {
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .push(client_id_parameter());
                add_error(operation, 404, "No active tenant by that client id or host");
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// Documents `status` with the shared error body, unless the handler
/// already said something more precise about it.
fn add_error(operation: &mut Operation, status: u16, description: &str) {
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build();
    operation
        .responses
        .responses
        .entry(status.to_string())
        .or_insert(RefOr::T(response));
}

fn client_id_parameter() -> Parameter {
    let schema = utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(crate::db::schema_name::PATTERN))
        .build();
    ParameterBuilder::new()
        .name("X-Client-ID")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "The tenant's client id (its schema name). Without it, the `Host` names the tenant.",
        ))
        .schema(Some(Schema::Object(schema)))
        .example(Some(serde_json::json!("public_tenant")))
        .build()
}

/// The document as JSON, rendered once: it depends only on the code.
/// The rendered document, made on first request from the settings.
#[derive(Default)]
pub struct RenderedDocument(OnceLock<Result<Bytes, String>>);

/// `GET /api/schema.json`.
pub async fn schema_json(
    State(settings): State<Arc<Settings>>,
    State(rendered): State<Arc<RenderedDocument>>,
) -> Response {
    let json = rendered.0.get_or_init(|| {
        super::openapi_document(&settings.chat)
            .to_pretty_json()
            .map(Bytes::from)
            .map_err(|e| e.to_string())
    });
    match json {
        Ok(json) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            json.clone(),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render the OpenAPI document");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `GET /api/docs`: a readable page that renders the document with a few
/// lines of our own script; nothing loads from elsewhere.
pub async fn docs() -> Html<&'static str> {
    Html(include_str!("openapi/docs.html"))
}
