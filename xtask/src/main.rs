//! Project tasks. `cargo xtask codegen [--check] [-v]` regenerates `crates/iothub-rest`
//! from `openapi/iothub.yaml` with progenitor.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use progenitor::{GenerationSettings, Generator, InterfaceStyle, TagStyle};
use sha2::{Digest, Sha256};

const SPEC: &str = "openapi/iothub.yaml";
const OUTPUT: &str = "crates/iothub-rest/src/generated.rs";
const PROGENITOR_VERSION: &str = "0.15.1";

const USAGE: &str = "usage: cargo xtask codegen [--check] [-v]

  codegen          regenerate crates/iothub-rest/src/generated.rs from openapi/iothub.yaml
    --check        do not write; exit 1 if the committed file differs from a fresh generation
    -v, --verbose  with --check, print the first differing lines";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode> {
    let Some((task, flags)) = args.split_first() else {
        bail!("{USAGE}");
    };
    if task != "codegen" {
        bail!("unknown task `{task}`\n{USAGE}");
    }
    let mut check = false;
    let mut verbose = false;
    for flag in flags {
        match flag.as_str() {
            "--check" => check = true,
            "-v" | "--verbose" => verbose = true,
            other => bail!("unknown flag `{other}`\n{USAGE}"),
        }
    }
    let root = workspace_root();
    let fresh = generate(&root)?;
    let output = root.join(OUTPUT);
    if check {
        let committed = std::fs::read_to_string(&output)
            .with_context(|| format!("reading {OUTPUT}"))?
            .replace("\r\n", "\n");
        if committed == fresh {
            println!("{OUTPUT} is up to date with {SPEC}");
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "{OUTPUT} is stale: {}",
            explain_staleness(&committed, &fresh)
        );
        if verbose {
            print_first_difference(&committed, &fresh);
        }
        eprintln!("run `cargo xtask codegen` and commit the result");
        return Ok(ExitCode::FAILURE);
    }
    std::fs::write(&output, &fresh).with_context(|| format!("writing {OUTPUT}"))?;
    println!("wrote {OUTPUT} ({} lines)", fresh.lines().count());
    Ok(ExitCode::SUCCESS)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Builds the full text of `generated.rs`: header, then progenitor's output, formatted.
fn generate(root: &Path) -> Result<String> {
    let spec_text =
        std::fs::read_to_string(root.join(SPEC)).with_context(|| format!("reading {SPEC}"))?;
    generate_from(&spec_text)
}

/// Builds `generated.rs` from the text of a spec.
fn generate_from(spec_text: &str) -> Result<String> {
    let spec_hash = hex(&Sha256::digest(spec_text.as_bytes()));
    let spec: openapiv3::OpenAPI =
        serde_yaml::from_str(spec_text).with_context(|| format!("parsing {SPEC}"))?;
    check_progenitor_constraints(&spec)?;

    let mut settings = GenerationSettings::new();
    settings
        .with_interface(InterfaceStyle::Positional)
        .with_tag(TagStyle::Merged)
        .with_inner_type(
            "crate::ClientState"
                .parse()
                .map_err(|e| anyhow::anyhow!("inner type: {e}"))?,
        )
        .with_derive("PartialEq")
        // Device keys: a hand-written type whose `Debug` hides them (see iothub-rest/src/lib.rs).
        .with_replacement(
            "SymmetricKey",
            "crate::SymmetricKey",
            [progenitor::TypeImpl::Default].into_iter(),
        )
        // New keys from bulk key regeneration: same reason as `SymmetricKey`.
        .with_replacement(
            "RegenerateKeyResult",
            "crate::RegenerateKeyResult",
            [progenitor::TypeImpl::Default].into_iter(),
        )
        // Blob container URIs of import/export jobs carry SAS tokens: a hand-written type
        // whose `Debug` hides the query string (see iothub-rest/src/lib.rs).
        .with_replacement(
            "BlobContainerUri",
            "crate::BlobContainerUri",
            [progenitor::TypeImpl::Default].into_iter(),
        )
        // Query items: kept as raw JSON text, decoded once by the caller (twin or any value).
        .with_replacement(
            "QueryResultItem",
            "crate::QueryResultItem",
            std::iter::empty(),
        );
    // Ids, `methodName` and `query` carry IoT Hub's patterns and lengths in the spec (for
    // documentation and schema fuzzing); the client keeps them as plain strings and leaves
    // the checking to the service.
    for schema in id_parameter_schemas(&spec) {
        settings.with_conversion(schema, "str", std::iter::empty());
    }
    for schema in constrained_property_schemas(&spec) {
        settings.with_conversion(schema, "::std::string::String", std::iter::empty());
    }
    let mut generator = Generator::new(&settings);
    let tokens = generator
        .generate_tokens(&spec)
        .map_err(|e| anyhow::anyhow!("progenitor rejected {SPEC}: {e}"))?;
    let mut file: syn::File = syn::parse2(tokens).context("progenitor produced invalid Rust")?;
    syn::visit_mut::VisitMut::visit_file_mut(&mut SplitDocLines, &mut file);
    let body = prettyplease::unparse(&file);
    Ok(format!(
        "// generated — do not edit.\n\
         // Source: {SPEC} (sha256 {spec_hash}), progenitor {PROGENITOR_VERSION}.\n\
         // Regenerate with `cargo xtask codegen`; change the spec, never this file.\n\n{body}"
    ))
}

/// Splits every multi-line `#[doc = "…"]` into one attribute per line.
///
/// prettyplease prints a multi-line doc string as a `/** … */` block whose continuation
/// lines carry the item's indentation, which rustdoc then reads as indented code blocks
/// (and runs as doctests). One `///` line per doc line keeps the text as written.
struct SplitDocLines;

impl syn::visit_mut::VisitMut for SplitDocLines {
    fn visit_attributes_mut(&mut self, attrs: &mut Vec<syn::Attribute>) {
        let mut out = Vec::with_capacity(attrs.len());
        for attr in attrs.drain(..) {
            match doc_text(&attr) {
                Some(text) if text.contains('\n') => {
                    for line in text.lines() {
                        let line = if line.is_empty() {
                            String::new()
                        } else {
                            format!(" {}", line.trim_end())
                        };
                        out.push(syn::parse_quote!(#[doc = #line]));
                    }
                }
                _ => out.push(attr),
            }
        }
        *attrs = out;
    }
}

fn doc_text(attr: &syn::Attribute) -> Option<String> {
    let syn::Meta::NameValue(nv) = &attr.meta else {
        return None;
    };
    if !nv.path.is_ident("doc") {
        return None;
    }
    match &nv.value {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => Some(s.value()),
        _ => None,
    }
}

/// progenitor panics on some valid OpenAPI shapes; reject them here with a readable error
/// instead. The spec is written to avoid them, so nothing is rewritten.
/// The distinct schemas of `id`/`mid` path parameters that carry a pattern, as typify sees
/// them (a string with length limits and a pattern).
fn id_parameter_schemas(spec: &openapiv3::OpenAPI) -> Vec<schemars::schema::SchemaObject> {
    use openapiv3::{ParameterSchemaOrContent, ReferenceOr, SchemaKind, Type};
    let mut out: Vec<schemars::schema::SchemaObject> = Vec::new();
    for (_, _, op) in spec.operations() {
        for param in &op.parameters {
            let ReferenceOr::Item(openapiv3::Parameter::Path { parameter_data, .. }) = param else {
                continue;
            };
            let ParameterSchemaOrContent::Schema(ReferenceOr::Item(schema)) =
                &parameter_data.format
            else {
                continue;
            };
            let SchemaKind::Type(Type::String(s)) = &schema.schema_kind else {
                continue;
            };
            let Some(pattern) = &s.pattern else { continue };
            let converted = schemars::schema::SchemaObject {
                instance_type: Some(schemars::schema::InstanceType::String.into()),
                string: Some(Box::new(schemars::schema::StringValidation {
                    max_length: s.max_length.and_then(|n| u32::try_from(n).ok()),
                    min_length: s.min_length.and_then(|n| u32::try_from(n).ok()),
                    pattern: Some(pattern.clone()),
                })),
                ..Default::default()
            };
            if !out.contains(&converted) {
                out.push(converted);
            }
        }
    }
    out
}

/// String properties of component schemas that carry a length or pattern, as typify sees
/// them (with their description).
fn constrained_property_schemas(spec: &openapiv3::OpenAPI) -> Vec<schemars::schema::SchemaObject> {
    use openapiv3::{ReferenceOr, SchemaKind, Type};
    let mut out = Vec::new();
    let Some(components) = &spec.components else {
        return out;
    };
    for schema in components.schemas.values() {
        let ReferenceOr::Item(schema) = schema else {
            continue;
        };
        let SchemaKind::Type(Type::Object(object)) = &schema.schema_kind else {
            continue;
        };
        for property in object.properties.values() {
            let ReferenceOr::Item(property) = property else {
                continue;
            };
            let SchemaKind::Type(Type::String(s)) = &property.schema_kind else {
                continue;
            };
            if s.min_length.is_none() && s.max_length.is_none() && s.pattern.is_none() {
                continue;
            }
            out.push(schemars::schema::SchemaObject {
                metadata: property.schema_data.description.as_ref().map(|d| {
                    Box::new(schemars::schema::Metadata {
                        description: Some(d.clone()),
                        ..Default::default()
                    })
                }),
                instance_type: Some(schemars::schema::InstanceType::String.into()),
                string: Some(Box::new(schemars::schema::StringValidation {
                    max_length: s.max_length.and_then(|n| u32::try_from(n).ok()),
                    min_length: s.min_length.and_then(|n| u32::try_from(n).ok()),
                    pattern: s.pattern.clone(),
                })),
                ..Default::default()
            });
        }
    }
    out
}

fn check_progenitor_constraints(spec: &openapiv3::OpenAPI) -> Result<()> {
    if !spec.openapi.starts_with("3.0.") {
        bail!(
            "{SPEC}: progenitor accepts OpenAPI 3.0.x only, found {}",
            spec.openapi
        );
    }
    let mut problems = Vec::new();
    for (path, method, op) in spec.operations() {
        let name = op.operation_id.as_deref().unwrap_or("<no operationId>");
        if op.operation_id.is_none() {
            problems.push(format!("{method} {path}: missing operationId"));
        }
        if op.responses.default.is_some() {
            problems.push(format!(
                "{name}: a `default` response counts as success and error at once; use 4XX/5XX"
            ));
        }
        let success: std::collections::BTreeSet<String> = op
            .responses
            .responses
            .iter()
            .filter(|(code, _)| code.to_string().starts_with('2'))
            .map(|(_, r)| serde_json::to_string(r).unwrap_or_default())
            .filter(|r| !r.is_empty())
            .collect();
        let body_kinds: std::collections::BTreeSet<_> =
            success.iter().map(|r| r.contains("\"content\"")).collect();
        if body_kinds.len() > 1 {
            problems.push(format!(
                "{name}: success responses mix bodies and no body; progenitor needs one 2xx type"
            ));
        }
        if op.parameters.iter().any(|p| {
            p.as_item()
                .is_some_and(|p| p.parameter_data_ref().name == "api-version")
        }) {
            problems.push(format!(
                "{name}: declare no api-version parameter; iothub-rest adds it to every request"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!(
            "{SPEC} has shapes progenitor cannot take:\n  {}",
            problems.join("\n  ")
        )
    }
}

fn explain_staleness(committed: &str, fresh: &str) -> String {
    let header = |s: &str| s.lines().nth(1).unwrap_or_default().to_owned();
    if header(committed) != header(fresh) {
        "the spec (or progenitor) changed since it was generated".into()
    } else {
        "the spec is unchanged, so the generated file was edited by hand".into()
    }
}

fn print_first_difference(committed: &str, fresh: &str) {
    let (old, new): (Vec<_>, Vec<_>) = (committed.lines().collect(), fresh.lines().collect());
    let first = old
        .iter()
        .zip(&new)
        .position(|(a, b)| a != b)
        .unwrap_or(old.len().min(new.len()));
    eprintln!("first difference at line {}:", first + 1);
    for line in old.iter().skip(first).take(5) {
        eprintln!("- {line}");
    }
    for line in new.iter().skip(first).take(5) {
        eprintln!("+ {line}");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> String {
        std::fs::read_to_string(workspace_root().join(SPEC)).unwrap()
    }

    #[test]
    fn committed_file_matches_the_spec() {
        let committed = std::fs::read_to_string(workspace_root().join(OUTPUT)).unwrap();
        assert!(
            committed == generate_from(&spec()).unwrap(),
            "run `cargo xtask codegen`"
        );
    }

    #[test]
    fn a_new_schema_field_changes_the_generated_code() {
        let original = spec();
        let anchor = "    Device:\n";
        let at = original.find(anchor).expect("Device schema") + anchor.len();
        let props = original[at..]
            .find("      properties:\n")
            .expect("Device properties")
            + at;
        let insert = props + "      properties:\n".len();
        let mut changed = original.clone();
        changed.insert_str(
            insert,
            "        brandNewField:\n          type: string\n          description: Test field.\n",
        );
        let before = generate_from(&original).unwrap();
        let after = generate_from(&changed).unwrap();
        assert!(!before.contains("brand_new_field"));
        assert!(
            after.contains("pub brand_new_field: ::std::option::Option<::std::string::String>")
        );
        assert_ne!(
            before.lines().nth(1),
            after.lines().nth(1),
            "the header carries the spec hash"
        );
        assert_eq!(
            explain_staleness(&before, &after),
            "the spec (or progenitor) changed since it was generated"
        );
        let hand_edited = before.replacen("pub struct Device", "pub struct Devices", 1);
        assert!(explain_staleness(&hand_edited, &before).contains("edited by hand"));
    }

    #[test]
    fn default_responses_are_refused_with_a_readable_error() {
        let broken = spec().replacen("\"4XX\":", "default:", 1);
        let err = generate_from(&broken).unwrap_err().to_string();
        assert!(err.contains("default"), "{err}");
    }
}
