//! `GET /demo`: a self-contained page (no CDN) to try a model through the public API. Which page
//! a model gets follows from its description: an image model's lets one draw or upload a picture;
//! a features model whose features are those the passenger page encodes gets that page; any other
//! features model gets a form generated from its feature names.

use actix_web::{web, HttpRequest, HttpResponse};
use max_mnist_core::{InputKind, ModelInfo};

use crate::endpoints;
use crate::errors::ApiError;
use crate::parameters::Parameters;
use crate::state::AppState;

use super::kserve_v2::PROBABILITIES;

const DRAWING_PAGE: &str = include_str!("../../static/demo.html");
const PASSENGER_PAGE: &str = include_str!("../../static/passenger.html");

/// The features the passenger page encodes, in the order its `encode` writes them.
const PASSENGER_FEATURES: [&str; 12] = [
    "age", "sibsp", "parch", "fare", "female", "male", "embark_C", "embark_Q", "embark_S",
    "class_1", "class_2", "class_3",
];

/// The page a model's description calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoPage {
    /// Draw or upload a picture; the prediction, the probabilities and the explanation heatmap.
    Drawing,
    /// The passenger form: its fields encoded as [`PASSENGER_FEATURES`].
    Passenger,
    /// One number per feature, generated from the feature names.
    Features,
}

impl DemoPage {
    pub fn of(info: &ModelInfo) -> Self {
        match info.input.kind {
            InputKind::Image => Self::Drawing,
            InputKind::Features if info.input.feature_names == PASSENGER_FEATURES => {
                Self::Passenger
            }
            InputKind::Features => Self::Features,
        }
    }
}

/// A self-contained page (no CDN) to try a model through the public API: for an image model, draw
/// or upload a picture and see the prediction, the probabilities and the explanation heatmap; for
/// a features model, give its features and see the probability of each class.
#[utoipa::path(get, path = endpoints::DEMO, tag = "operations", params(("model" = Option<String>, Query, description = "The model to try (default: the first)")), responses(
    (status = 200, description = "The demo page", content_type = "text/html", body = String),
    (status = 400, description = "A query parameter other than `model`", body = crate::errors::ErrorBody),
    (status = 404, description = "A model not served", body = crate::errors::ErrorBody),
))]
pub async fn demo(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = Parameters::from_query(request.query_string(), &["model"])?;
    let served = match query.text("model") {
        Some(name) => state.registry.resolve(name, None)?,
        None => state.registry.first().ok_or_else(|| {
            ApiError::NotFound("this server serves no model at the moment".into())
        })?,
    };
    let info = served.info();
    let page = match DemoPage::of(info) {
        DemoPage::Drawing => DRAWING_PAGE.to_owned(),
        DemoPage::Passenger => PASSENGER_PAGE.replacen(
            "<html lang=\"en\">",
            &format!(
                "<html lang=\"en\" data-model=\"{}\">",
                html_escaped(&info.name)
            ),
            1,
        ),
        DemoPage::Features => features_page(info),
    };
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page))
}

/// A page with one number input per feature of `info`, whose button sends them to KServe v2's
/// `infer` as FP32 of shape `[1,F]` and shows the probability of each label.
pub fn features_page(info: &ModelInfo) -> String {
    let name = html_escaped(&info.name);
    let count = info.input.feature_names.len();
    let inputs: String = info
        .input
        .feature_names
        .iter()
        .enumerate()
        .map(|(index, feature)| {
            let feature = html_escaped(feature);
            format!(
                "  <label for=\"f{index}\">{feature}</label>\n  <input id=\"f{index}\" name=\"{feature}\" type=\"number\" step=\"any\" value=\"0\" required>\n"
            )
        })
        .collect();
    let model = script_json(&serde_json::Value::from(info.name.as_str()));
    let input = script_json(&serde_json::Value::from(info.input.name.as_str()));
    let output = script_json(&serde_json::Value::from(PROBABILITIES));
    let labels = script_json(&serde_json::Value::from(info.output.labels.clone()));
    format!(
        r##"<!doctype html>
<html lang="en" data-model="{name}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>max-mnist — {name}</title>
<style>
  :root {{ font-family: system-ui, sans-serif; color: #1d2330; background: #f4f5f7; }}
  body {{ margin: 0 auto; max-width: 880px; padding: 1.5rem; }}
  h1 {{ font-size: 1.4rem; margin: 0 0 .25rem; }}
  p.lead {{ margin: 0 0 1.25rem; color: #4a5160; }}
  .panel {{ background: #fff; border-radius: 10px; padding: 1rem; box-shadow: 0 1px 3px #0002; }}
  form {{ display: grid; grid-template-columns: auto 9rem; gap: .5rem .75rem; align-items: center; }}
  label {{ color: #4a5160; }}
  input {{ font: inherit; padding: .25rem .4rem; border: 1px solid #9aa1ae; border-radius: 5px; }}
  #status {{ color: #4a5160; min-height: 1.2rem; margin: .75rem 0; }}
  #status.error {{ color: #b3261e; }}
  td, th {{ padding: .2rem .75rem .2rem 0; text-align: left; }}
  footer {{ margin-top: 1.5rem; font-size: .85rem; color: #4a5160; }}
</style>
</head>
<body>
<h1>{name}</h1>
<p class="lead">Give the {count} features and press Classify. This page calls the public API:
<code>POST v2/models/{name}/infer</code> with the features as FP32 of shape [1,{count}].</p>
<div class="panel">
<form id="features">
{inputs}  <button type="submit">Classify</button>
</form>
<p id="status"></p>
<table id="probabilities"><thead><tr><th>Class</th><th>Probability</th></tr></thead><tbody></tbody></table>
</div>
<footer>max-mnist · <a href="swagger-ui/">API documentation</a> · <a href="demo">the first model's page</a></footer>
<script>
"use strict";
const model = {model};
const inputName = {input};
const outputName = {output};
const labels = {labels};
const form = document.getElementById("features");
const statusLine = document.getElementById("status");
const rows = document.querySelector("#probabilities tbody");

form.addEventListener("submit", async (event) => {{
  event.preventDefault();
  if (!form.reportValidity()) return;
  const data = Array.from(form.querySelectorAll("input"), (input) => Number(input.value));
  statusLine.textContent = "Asking the model…";
  statusLine.className = "";
  try {{
    const request = {{ inputs: [{{ name: inputName, shape: [1, data.length], datatype: "FP32", data }}] }};
    const infer = await fetch(`v2/models/${{encodeURIComponent(model)}}/infer`, {{
      method: "POST", headers: {{ "Content-Type": "application/json" }}, body: JSON.stringify(request) }});
    const answer = await infer.json();
    if (!infer.ok) throw new Error(answer.error || infer.statusText);
    const probabilities = answer.outputs.find((o) => o.name === outputName).data;
    rows.replaceChildren(...probabilities.map((p, i) => {{
      const row = document.createElement("tr");
      for (const text of [labels[i] ?? String(i), (p * 100).toFixed(1) + " %"]) {{
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }}
      return row;
    }}));
    statusLine.textContent = "";
  }} catch (error) {{
    statusLine.textContent = "Error: " + error.message;
    statusLine.className = "error";
  }}
}});
</script>
</body>
</html>
"##
    )
}

/// `value` as JSON that can stand inside a `<script>` element (no `</script>` can end it early).
fn script_json(value: &serde_json::Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn html_escaped(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            other => other.to_string(),
        })
        .collect()
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(endpoints::DEMO).route(web::get().to(demo)));
}

#[cfg(test)]
mod tests {
    use max_mnist_core::model::{
        Answer, DefaultTarget, ExplanationInfo, InputInfo, NetworkInfo, OutputInfo, OutputKind,
    };

    use super::*;

    fn features_model(feature_names: &[&str]) -> ModelInfo {
        ModelInfo {
            name: "loans<1>".into(),
            version: "1".into(),
            network: NetworkInfo {
                name: "ONNX".into(),
                origin: "an ONNX graph, loans.onnx".into(),
                description: "A loan model".into(),
                source: "loans.onnx".into(),
            },
            input: InputInfo {
                kind: InputKind::Features,
                name: "input-0".into(),
                shape: vec![feature_names.len()],
                feature_names: feature_names.iter().map(|f| (*f).to_owned()).collect(),
            },
            output: OutputInfo {
                kind: OutputKind::Logits,
                labels: vec!["repaid".into(), "</script>".into()],
                answer: Answer::Label,
            },
            explanation: ExplanationInfo {
                steps: 50,
                target: DefaultTarget::Class(1),
            },
            multiply_adds: 1,
        }
    }

    #[test]
    fn the_page_follows_from_the_feature_names() {
        assert_eq!(
            DemoPage::of(&features_model(&PASSENGER_FEATURES)),
            DemoPage::Passenger
        );
        let mut reordered = PASSENGER_FEATURES;
        reordered.swap(0, 1);
        assert_eq!(
            DemoPage::of(&features_model(&reordered)),
            DemoPage::Features
        );
        let generic = features_model(&["feature_0", "feature_1", "feature_2"]);
        assert_eq!(DemoPage::of(&generic), DemoPage::Features);
        let mut image = generic;
        image.input.kind = InputKind::Image;
        assert_eq!(DemoPage::of(&image), DemoPage::Drawing);
    }

    #[test]
    fn a_generated_page_has_one_number_per_feature_and_calls_kserve_v2() {
        let page = features_page(&features_model(&["income", "debt \"ratio\"", "age"]));
        assert!(page.contains(r#"<html lang="en" data-model="loans&lt;1&gt;">"#));
        assert_eq!(page.matches(r#"type="number""#).count(), 3);
        assert!(page.contains(r#"<input id="f0" name="income" type="number""#));
        assert!(page.contains(r#"name="debt &quot;ratio&quot;""#));
        assert!(page.contains("FP32 of shape [1,3]"));
        assert!(page.contains(r#"const inputName = "input-0";"#));
        assert!(page.contains(r#"const outputName = "probabilities";"#));
        assert!(page.contains(r#"const labels = ["repaid","\u003c/script\u003e"];"#));
        assert!(page.contains(r#"const model = "loans\u003c1\u003e";"#));
        assert!(page.contains("fetch(`v2/models/${encodeURIComponent(model)}/infer`"));
        assert_eq!(page.matches("</script>").count(), 1);
        for external in ["http://", "https://", "src=\"//", "href=\"//"] {
            assert!(!page.contains(external), "the page refers to {external}");
        }
    }
}
