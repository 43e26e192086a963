//! The Titanic example's model over every protocol, as the first model of a server (so the MAX
//! routes answer with it) beside the MAX model: CSV, JSON records with encoded or raw fields, rows
//! of numbers; the mean attributions and their chart; `input_file_path`; each bad input refused with
//! a 400 naming its row and column.

use reqwest::blocking::multipart::{Form, Part};
use reqwest::blocking::Response;
use serde_json::{json, Value};

use crate::helpers::{
    json_numbers, kserve_error, max_error, ok_json, png_body, titanic_dir, titanic_first_app,
    titanic_reference, torchserve_error, TestApp,
};
use crate::kserve_v2_routes::output;
use crate::titanic::{assert_close_to_largest, reference_mean, TEST_FILES};

const FEATURES: [&str; 12] = [
    "age", "sibsp", "parch", "fare", "female", "male", "embark_C", "embark_Q", "embark_S",
    "class_1", "class_2", "class_3",
];

fn test_csv(file: &str) -> Vec<u8> {
    let dir = titanic_dir();
    std::fs::read(dir.join("test_data").join(file)).expect("read a test file")
}

/// The encoded rows of a test file, as lists of 12 numbers.
fn rows(reference: &Value, key: &str) -> Vec<Vec<f64>> {
    reference[key]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| json_numbers(&row["features"]))
        .collect()
}

fn labels_of(reference: &Value, key: &str) -> Vec<&'static str> {
    reference[key]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| match row["prediction"].as_u64() {
            Some(1) => "Survived",
            _ => "Not Survived",
        })
        .collect()
}

/// The same passengers as titanic3.csv's raw fields, as JSON records.
fn raw_records(rows: &[Vec<f64>]) -> Vec<Value> {
    rows.iter()
        .map(|f| {
            let pick = |from: usize, names: [&'static str; 3]| -> Option<&'static str> {
                (0..3).find(|&i| f[from + i] == 1.0).map(|i| names[i])
            };
            json!({
                "pclass": pick(9, ["1", "2", "3"]).map(|c| c.parse::<u8>().unwrap_or(0)),
                "name": "Doe, Mr. John",
                "sex": if f[4] == 1.0 { "female" } else { "male" },
                "age": f[0], "sibsp": f[1], "parch": f[2], "fare": f[3],
                "embarked": pick(6, ["C", "Q", "S"]).unwrap_or(""),
            })
        })
        .collect()
}

fn post_csv(app: &TestApp, path: &str, csv: Vec<u8>) -> Response {
    app.client
        .post(app.url(path))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .expect("POST CSV")
}

fn mean_map(body: &Value) -> Vec<f32> {
    FEATURES
        .iter()
        .map(|f| body[*f].as_f64().expect("a mean per feature") as f32)
        .collect()
}

#[test]
#[ignore = "needs MNIST_TITANIC_DIR (.ci/run sets it and runs ignored tests)"]
fn every_protocol_answers_each_passenger_of_both_test_files() {
    let (app, reference) = (titanic_first_app(None), titanic_reference());
    for (file, key) in TEST_FILES {
        let csv = test_csv(file);
        let labels = labels_of(&reference, key);
        let rows = rows(&reference, key);

        // TorchServe: a label per row, from CSV (body, multipart, `curl -T`) and JSON records.
        assert_eq!(
            ok_json(post_csv(&app, "/predictions/titanic", csv.clone())),
            json!(labels),
            "{file}"
        );
        let form = Form::new().part("data", Part::bytes(csv.clone()).file_name(file));
        assert_eq!(
            ok_json(app.post_form("/predictions/titanic", form)),
            json!(labels)
        );
        assert_eq!(
            ok_json(app.torchserve_predict("titanic", csv.clone())),
            json!(labels)
        );
        let encoded: Vec<Value> = rows
            .iter()
            .map(|r| {
                Value::Object(
                    FEATURES
                        .iter()
                        .zip(r)
                        .map(|(f, v)| ((*f).to_owned(), json!(v)))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            ok_json(app.post_json("/predictions/titanic", &json!(encoded))),
            json!(labels)
        );
        assert_eq!(
            ok_json(app.post_json("/predictions/titanic", &json!({"data": raw_records(&rows)}))),
            json!(labels),
            "{file}: the raw titanic3.csv fields give the same answers"
        );

        // TorchServe's explanation: the mean per feature, target 1, then 0.
        let means = &reference[key];
        let served = ok_json(post_csv(&app, "/explanations/titanic", csv.clone()));
        assert_close_to_largest(
            &mean_map(&served),
            &reference_mean(&means["mean_attributions_target1"]),
            1e-4,
            file,
        );
        let target0 = ok_json(app.post_json(
            "/explanations/titanic",
            &json!({"data": encoded, "target": 0}),
        ));
        assert_close_to_largest(
            &mean_map(&target0),
            &reference_mean(&means["mean_attributions_target0"]),
            1e-4,
            file,
        );

        // KServe v1: class indices; per-row attributions.
        let classes: Vec<u64> = labels.iter().map(|l| u64::from(*l == "Survived")).collect();
        let v1 = ok_json(app.v1_predict("titanic", &json!({"instances": raw_records(&rows)})));
        assert_eq!(v1["predictions"], json!(classes));
        let v1 = ok_json(app.v1_predict("titanic", &json!({"instances": rows})));
        assert_eq!(v1["predictions"], json!(classes));
        let explained = ok_json(app.v1_explain("titanic", &json!({"instances": encoded})));
        for (index, (row, expected)) in explained["explanations"]
            .as_array()
            .expect("explanations")
            .iter()
            .zip(reference[key]["rows"].as_array().expect("rows"))
            .enumerate()
        {
            assert_close_to_largest(
                &mean_map(row),
                &json_numbers(&expected["attributions_target1"]),
                1e-4,
                &format!("{file} row {index}"),
            );
        }

        // KServe v2: FP32 [N,12].
        let flat: Vec<f64> = rows.iter().flatten().copied().collect();
        let body = json!({"inputs": [{"name": "input-0", "shape": [rows.len(), 12], "datatype": "FP32", "data": flat}]});
        let v2 = ok_json(app.v2_infer("titanic", &body));
        assert_eq!(output(&v2, "predict")["data"], json!(classes));
        assert_eq!(
            output(&v2, "probabilities")["shape"],
            json!([rows.len(), 2])
        );
        let expected: Vec<f64> = reference[key]["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .flat_map(|row| json_numbers(&row["probabilities"]))
            .collect();
        let served = json_numbers(&output(&v2, "probabilities")["data"]);
        let worst = served
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0f64, f64::max);
        assert!(
            worst <= 1e-6,
            "{file}: probabilities {worst} from PyTorch's"
        );

        // MAX: each passenger, from a CSV upload and from a JSON body.
        let form = Form::new().part("file", Part::bytes(csv.clone()).file_name(file));
        let max = ok_json(app.post_form("/model/predict", form));
        let predictions = max["predictions"].as_array().expect("predictions");
        assert_eq!(predictions.len(), labels.len());
        for (prediction, label) in predictions.iter().zip(&labels) {
            assert_eq!(prediction["label"], *label);
            assert!(prediction["probability"].as_f64().expect("probability") >= 0.5);
        }
        let from_json = ok_json(app.post_json("/model/predict", &json!(raw_records(&rows))));
        assert_eq!(from_json["predictions"], max["predictions"]);
    }
    let metadata = ok_json(app.get("/v2/models/titanic"));
    assert_eq!(metadata["inputs"][0]["datatype"], "FP32");
    assert_eq!(metadata["inputs"][0]["shape"], json!([-1, 12]));
    assert_eq!(
        ok_json(app.get("/model/labels"))["labels"],
        json!([{"id": "0", "name": "Not Survived"}, {"id": "1", "name": "Survived"}])
    );
    assert_eq!(ok_json(app.get("/model/metadata"))["id"], "titanic");
}

#[test]
#[ignore = "needs MNIST_TITANIC_DIR (.ci/run sets it and runs ignored tests)"]
fn explanations_come_as_means_per_feature_rows_and_a_chart() {
    let (app, reference) = (titanic_first_app(None), titanic_reference());
    let csv = test_csv("titanic_survived.csv");
    let form = || Form::new().part("file", Part::bytes(csv.clone()).file_name("s.csv"));
    let body = ok_json(app.post_form("/model/explain", form()));
    assert_eq!(
        (body["status"].as_str(), body["target"].as_u64()),
        (Some("ok"), Some(1))
    );
    assert_eq!(body["label"], "Survived");
    assert_close_to_largest(
        &mean_map(&body["attributions"]),
        &reference_mean(&reference["survived_csv"]["mean_attributions_target1"]),
        1e-4,
        "MAX mean",
    );
    assert_eq!(body["rows"].as_array().map(Vec::len), Some(71));
    let fifteen = ok_json(app.post_form("/model/explain?steps=15", form()));
    assert_close_to_largest(
        &mean_map(&fifteen["attributions"]),
        &reference_mean(&reference["survived_csv"]["mean_attributions_target1_15_steps"]),
        1e-4,
        "15 steps from the query",
    );
    let pictures = [
        app.client
            .post(app.url("/model/explain?format=png"))
            .multipart(form())
            .send()
            .expect("POST"),
        app.client
            .post(app.url("/explanations/titanic"))
            .header("accept", "image/png")
            .header("content-type", "text/csv")
            .body(csv.clone())
            .send()
            .expect("POST"),
    ];
    for response in pictures {
        let chart = png_body(response);
        assert!(
            chart.width() >= 400 && chart.height() >= 12 * 20,
            "{}×{}",
            chart.width(),
            chart.height()
        );
    }
    let message = max_error(
        app.post_form("/model/explain?target=1", form().text("target", "0")),
        400,
    );
    assert!(message.contains("target"), "{message}");
    let message = max_error(app.post_form("/model/predict?top_k=2", form()), 400);
    assert!(message.contains("top_k is for images"), "{message}");
    app.assert_still_serving();
}

#[test]
#[ignore = "needs MNIST_TITANIC_DIR (.ci/run sets it and runs ignored tests)"]
fn input_file_path_is_refused_unless_an_input_directory_is_named_and_then_confined_to_it() {
    let dir = titanic_dir();
    let request = json!({"input_file_path": ["titanic_survived.csv"]});
    let closed = titanic_first_app(None);
    let message = torchserve_error(
        closed.post_json("/predictions/titanic", &request),
        400,
        "BadRequestException",
    );
    for says in [
        "send the CSV itself",
        "--input-dir",
        "INPUT_DIR",
        "server.input_dir",
    ] {
        assert!(message.contains(says), "{says}: {message}");
    }

    let open = titanic_first_app(Some(&dir.join("test_data")));
    let labels = ok_json(open.post_json("/predictions/titanic", &request));
    assert_eq!(labels.as_array().map(Vec::len), Some(71));
    let titanic3 = dir.join("titanic3.csv");
    for (path, says) in [
        ("../titanic3.csv", "leads out of the input directory"),
        (titanic3.to_str().expect("UTF-8"), "is an absolute path"),
        ("no_such.csv", "is not a file in the input directory"),
    ] {
        let response = open.post_json("/predictions/titanic", &json!({"input_file_path": [path]}));
        let message = torchserve_error(response, 400, "BadRequestException");
        assert!(message.contains(says), "{path}: {message}");
    }
    open.assert_still_serving();
}

#[test]
#[ignore = "needs MNIST_TITANIC_DIR (.ci/run sets it and runs ignored tests)"]
fn bad_passengers_are_400s_naming_the_row_and_the_column() {
    let app = titanic_first_app(None);
    let header = "pclass,sex,age,sibsp,parch,fare,embarked";
    let csv = |rows: &str| format!("{header}\n1,female,29,0,0,211.3,S\n{rows}\n").into_bytes();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            csv("3,male,old,0,0,7.2,S"),
            "row 2: column `age`: `old` is not a number",
        ),
        (
            csv("3,male,30,0,0,-7.2,S"),
            "row 2: column `fare`: -7.2 is not a number of 0 or more",
        ),
        (
            csv("3,mal,30,0,0,7.2,S"),
            "row 2: column `sex`: `mal` is not `male` or `female`",
        ),
        (
            csv("4,male,30,0,0,7.2,S"),
            "row 2: column `pclass`: 4 is not a class",
        ),
        (
            csv("3,male,30,0,0,7.2,X"),
            "row 2: column `embarked`: `X` is not a port",
        ),
        (
            csv("3,male,30,0,0,7.2,S,extra"),
            "row 2 has 8 values, the header 7",
        ),
        (csv("3,male,30,0,0"), "row 2 has 5 values, the header 7"),
        (
            b"pclass,sex,age,parch\n1,female,29,0\n".to_vec(),
            "row 1: no `sibsp`",
        ),
        (b"".to_vec(), "the CSV is empty"),
        (format!("{header}\n").into_bytes(), "no rows"),
        (
            format!("{header}\n{}", "1,female,29,0,0,211.3,S\n".repeat(129)).into_bytes(),
            "limits.max_instances",
        ),
    ];
    for (body, says) in cases {
        let message = torchserve_error(
            post_csv(&app, "/predictions/titanic", body),
            400,
            "BadRequestException",
        );
        assert!(message.contains(says), "{says}: {message}");
    }
    let message = kserve_error(
        app.v1_predict("titanic", &json!({"instances": [[1, 2, 3]]})),
        400,
    );
    assert!(
        message.contains("row 1: a numeric instance has 3 values") && message.contains("[12]"),
        "{message}"
    );
    let message = kserve_error(app.v1_predict("titanic", &json!({"instances": [{"pclass": 1, "sex": "male", "sibsp": 0, "parch": 0}, {"pclass": "first"}]})), 400);
    assert!(message.contains("row 2: column `pclass`"), "{message}");
    let message = max_error(app.predict(crate::helpers::sample(7)), 400);
    assert!(
        message.contains("not a file") || message.contains("header"),
        "{message}"
    );
    let message = torchserve_error(
        app.post_json(
            "/predictions/titanic",
            &json!({"input_file_path": "x.csv", "target": "one"}),
        ),
        400,
        "BadRequestException",
    );
    assert!(message.contains("target"), "{message}");
    let message = kserve_error(
        app.v2_infer("titanic", &json!({"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["aGk="]}]})),
        400,
    );
    assert!(
        message.contains("takes numbers, not BYTES") && message.contains("[N,12]"),
        "{message}"
    );
    app.assert_still_serving();
}

#[test]
#[ignore = "needs MNIST_TITANIC_DIR (.ci/run sets it and runs ignored tests)"]
fn the_demo_page_of_the_titanic_model_is_the_passenger_form() {
    let app = titanic_first_app(None);
    for path in ["/demo", "/demo?model=titanic"] {
        let response = app.get(path);
        assert_eq!(response.status(), 200, "{path}");
        let page = response.text().expect("HTML");
        assert!(
            page.contains(r#"<html lang="en" data-model="titanic">"#),
            "{path}"
        );
        // Chosen by the model's feature names, not generated from them.
        assert!(page.contains(r#"id="passenger""#) && page.contains(r#"name="embarked""#));
        assert!(
            !page.contains(r#"name="embark_C""#),
            "{path}: the generated form"
        );
        for external in ["http://", "https://", "src=\"//", "href=\"//"] {
            assert!(!page.contains(external), "{path} refers to {external}");
        }
        assert!(page.contains("fetch(`v2/models/${encodeURIComponent(model)}/infer`"));
        assert!(page.contains("fetch(`explanations/${encodeURIComponent(model)}?format=png`"));
    }
    let digits = app.get("/demo?model=max").text().expect("HTML");
    assert!(
        digits.contains("<canvas"),
        "an image model gets the digit page"
    );
    let message = max_error(app.get("/demo?model=resnet"), 404);
    assert!(
        message.contains("`titanic` (version 1.0) and `max`"),
        "{message}"
    );
}
