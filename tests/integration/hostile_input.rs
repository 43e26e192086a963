//! Hostile and broken uploads, sent to the real binary running as its own process: each gets a 4xx
//! with a JSON message, `/ping` answers after each, and the server's peak memory stays under 256 MB.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use image::{DynamicImage, GrayImage, ImageFormat, Rgba, RgbaImage};
use reqwest::blocking::multipart::{Form, Part};
use serde_json::Value;

use crate::helpers::{encode, image_form, project_root, sample, ServerProcess};

const PEAK_RSS_LIMIT: u64 = 256 * 1024 * 1024;

/// A client that outlasts slow refusals of big uploads.
fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client")
}

/// A PNG whose header declares `width`×`height` and that holds the first row or so of pixel data.
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grayscale
    png_chunk(&mut png, b"IHDR", &header);
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    zlib.write_all(&vec![0; width as usize + 1])
        .expect("compress");
    png_chunk(&mut png, b"IDAT", &zlib.finish().expect("compress"));
    png_chunk(&mut png, b"IEND", &[]);
    png
}

fn png_chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    png.extend_from_slice(&crc.sum().to_be_bytes());
}

/// Deterministic noise (a linear congruential generator).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

/// A GIF whose screen and only image are 0×0 pixels.
fn zero_size_gif() -> Vec<u8> {
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&[0, 0, 0, 0, 0x00, 0, 0]); // screen 0×0, no colour table
    gif.extend_from_slice(&[0x2c, 0, 0, 0, 0, 0, 0, 0, 0, 0x00]); // image 0×0 at (0, 0)
    gif.extend_from_slice(&[0x02, 0x00, 0x3b]); // empty LZW data, trailer
    gif
}

/// A JPEG start (SOI, a JFIF APP0 segment) followed by garbage.
fn jpeg_with_garbage() -> Vec<u8> {
    let mut jpeg = vec![
        0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0,
    ];
    jpeg.extend(noise(4096, 7));
    jpeg
}

/// Sample 7 blown up to `side`×`side`, dark ink on white, RGBA: a big but legitimate picture.
fn big_picture_of_a_seven(side: u32) -> Vec<u8> {
    let seven = image::load_from_memory(&sample(7))
        .expect("sample 7")
        .to_luma8();
    let big = image::imageops::resize(&seven, side, side, image::imageops::FilterType::Nearest);
    let rgba = RgbaImage::from_fn(side, side, |x, y| {
        let ink = big.get_pixel(x, y).0[0];
        Rgba([255 - ink, 255 - ink, 255 - ink, 255])
    });
    encode(&DynamicImage::ImageRgba8(rgba), ImageFormat::Png)
}

type SendRequest =
    Box<dyn Fn(&reqwest::blocking::Client, &str) -> reqwest::Result<reqwest::blocking::Response>>;

struct Refusal {
    what: &'static str,
    status: u16,
    /// Words the message must hold.
    says: &'static [&'static str],
    send: SendRequest,
}

fn upload(
    what: &'static str,
    status: u16,
    says: &'static [&'static str],
    bytes: Vec<u8>,
) -> Refusal {
    Refusal {
        what,
        status,
        says,
        send: Box::new(move |client, url| {
            client
                .post(format!("{url}/model/predict"))
                .multipart(image_form("file", bytes.clone()))
                .send()
        }),
    }
}

fn refusals() -> Vec<Refusal> {
    let mut truncated = sample(3);
    truncated.truncate(truncated.len() / 2);
    let strip = encode(
        &DynamicImage::ImageLuma8(GrayImage::new(1_000_000, 1)),
        ImageFormat::Png,
    );
    let huge = encode(
        &DynamicImage::ImageLuma8(GrayImage::new(12_000, 12_000)),
        ImageFormat::Png,
    );
    let big_rgb_jpeg = encode(
        &DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
            6000,
            6000,
            image::Rgb([250, 250, 250]),
        )),
        ImageFormat::Jpeg,
    );
    let svg = br#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><text x="8" y="22">7</text></svg>"#;
    let pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
    vec![
        upload("an empty file", 400, &["empty"], Vec::new()),
        Refusal {
            what: "an empty body",
            status: 415,
            says: &["multipart/form-data"],
            send: Box::new(|client, url| client.post(format!("{url}/model/predict")).send()),
        },
        upload("text", 400, &["not an image"], b"seven, I think".to_vec()),
        upload("a truncated PNG", 400, &["could not be decoded"], truncated),
        upload(
            "a PNG header only",
            400,
            &["could not be decoded"],
            b"\x89PNG\r\n\x1a\n".to_vec(),
        ),
        upload(
            "a PNG declaring 60000×60000 pixels",
            413,
            &["60000×60000", "limits.max_image_side"],
            png_declaring(60_000, 60_000),
        ),
        upload(
            "a 1,000,000×1 strip",
            413,
            &["1000000×1", "limits.max_image_side"],
            strip,
        ),
        upload(
            "a real 12000×12000 image",
            413,
            &["12000×12000", "limits.max_image_pixels"],
            huge,
        ),
        upload(
            "a 6000×6000 colour JPEG (108 MB decoded)",
            413,
            &["limits.max_decoder_bytes"],
            big_rgb_jpeg,
        ),
        upload("random bytes", 400, &["not an image"], noise(8192, 42)),
        upload("an SVG drawing", 415, &["SVG", "PNG"], svg.to_vec()),
        upload("a PDF", 415, &["PDF", "PNG"], pdf.to_vec()),
        upload("a zero-size GIF", 400, &["0×0"], zero_size_gif()),
        upload(
            "a JPEG with garbage after its header",
            400,
            &["could not be decoded"],
            jpeg_with_garbage(),
        ),
        upload(
            "a 20 MB upload",
            413,
            &["limits.max_body_bytes"],
            noise(20_000_000, 3),
        ),
        Refusal {
            what: "a form without the file field",
            status: 400,
            says: &["no image", "file"],
            send: Box::new(|client, url| {
                client
                    .post(format!("{url}/model/predict"))
                    .multipart(Form::new().text("top_k", "3"))
                    .send()
            }),
        },
        Refusal {
            what: "17 parts, over limits.max_multipart_parts",
            status: 400,
            says: &["16 parts", "limits.max_multipart_parts"],
            send: Box::new(|client, url| {
                let form = (0..17).fold(Form::new(), |form, i| form.text(format!("field{i}"), "x"));
                client
                    .post(format!("{url}/model/predict"))
                    .multipart(form)
                    .send()
            }),
        },
        Refusal {
            what: "JSON sent to the multipart route",
            status: 415,
            says: &["multipart/form-data"],
            send: Box::new(|client, url| {
                client
                    .post(format!("{url}/model/predict"))
                    .header("content-type", "application/json")
                    .body(r#"{"data": "iVBORw0KGgo="}"#)
                    .send()
            }),
        },
        Refusal {
            what: "a part that claims to be an image but is a PNG cut in its header",
            status: 400,
            says: &["could not be decoded"],
            send: Box::new(|client, url| {
                let part = Part::bytes(sample(5)[..20].to_vec())
                    .file_name("five.png")
                    .mime_str("image/png")
                    .expect("mime");
                client
                    .post(format!("{url}/model/predict"))
                    .multipart(Form::new().part("file", part))
                    .send()
            }),
        },
    ]
}

#[test]
fn every_hostile_upload_is_refused_with_a_message_and_memory_stays_bounded() {
    let server = ServerProcess::start(&[]);
    let client = client();
    let mut failures = Vec::new();
    for refusal in refusals() {
        match (refusal.send)(&client, &server.url) {
            Err(err) => failures.push(format!("{}: no answer ({err})", refusal.what)),
            Ok(response) => {
                let status = response.status().as_u16();
                let body: Value = response.json().unwrap_or(Value::Null);
                let message = body["message"].as_str().unwrap_or_default();
                let says_it = refusal.says.iter().all(|word| message.contains(word));
                if status != refusal.status || body["status"] != "error" || !says_it {
                    failures.push(format!(
                        "{}: expected {} saying {:?}, got {status} {body}",
                        refusal.what, refusal.status, refusal.says
                    ));
                }
            }
        }
        let ping = client.get(format!("{}/ping", server.url)).send();
        if !ping.is_ok_and(|response| response.status() == 200) {
            failures.push(format!("{}: /ping failed afterwards", refusal.what));
        }
    }

    // A big legitimate picture (4000×4000 RGBA, 64 MB decoded, just under the decoder limit) is read.
    let big_seven = big_picture_of_a_seven(4000);
    let body: Value = client
        .post(format!("{}/model/predict", server.url))
        .multipart(image_form("file", big_seven.clone()))
        .send()
        .expect("POST a big picture")
        .json()
        .expect("JSON");
    assert_eq!(body["predictions"][0]["prediction"], 7, "{body}");
    // …and several at once stay within the memory bound, since decodes take turns.
    std::thread::scope(|scope| {
        for _ in 0..6 {
            let (client, url, bytes) = (&client, &server.url, big_seven.clone());
            scope.spawn(move || {
                let response = client
                    .post(format!("{url}/model/predict"))
                    .multipart(image_form("file", bytes))
                    .send()
                    .expect("POST");
                assert_eq!(response.status(), 200);
            });
        }
    });

    let peak = server.peak_rss_bytes();
    println!("hostile input: peak RSS {} MB", peak / 1_000_000);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        peak < PEAK_RSS_LIMIT,
        "peak RSS {peak} bytes is over {PEAK_RSS_LIMIT}"
    );
}

/// Sixteen runners, sixteen big pictures at once: the decoding budget is the process's, not each
/// runner's, so memory stays within the same bound as with two runners.
#[test]
fn many_runners_decoding_big_pictures_at_once_stay_within_the_budget() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("runners.toml");
    // With decoder_budget_bytes = 16 GiB instead, this run peaked at 1,051 MB here; with the
    // default 128 MiB, at 97 MB.
    std::fs::write(&config, "[limits]\nrunners_per_model = 16\n").expect("write");
    let server = ServerProcess::start(&["--config", config.to_str().expect("UTF-8")]);
    let big_seven = big_picture_of_a_seven(4000);
    let client = client();
    std::thread::scope(|scope| {
        for _ in 0..16 {
            let (client, url, bytes) = (&client, &server.url, big_seven.clone());
            scope.spawn(move || {
                let body: Value = client
                    .post(format!("{url}/model/predict"))
                    .multipart(image_form("file", bytes))
                    .send()
                    .expect("POST")
                    .json()
                    .expect("JSON");
                assert_eq!(body["predictions"][0]["prediction"], 7, "{body}");
            });
        }
    });
    let peak = server.peak_rss_bytes();
    println!(
        "16 runners, 16 big pictures at once: peak RSS {} MB",
        peak / 1_000_000
    );
    assert!(
        peak < PEAK_RSS_LIMIT,
        "peak RSS {peak} bytes is over {PEAK_RSS_LIMIT}"
    );
}

#[test]
fn a_client_that_stalls_mid_upload_gets_a_408() {
    let config = project_root()
        .join("target")
        .join("test-logs")
        .join("short-timeout.toml");
    std::fs::create_dir_all(config.parent().expect("a parent")).expect("create target/test-logs");
    std::fs::write(&config, "[limits]\nrequest_timeout_secs = 2\n").expect("write the config");
    let server = ServerProcess::start(&["--config", config.to_str().expect("UTF-8")]);
    let address = server.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    let boundary = "XyZ";
    let head = format!(
        "POST /model/predict HTTP/1.1\r\nHost: {address}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 100000\r\n\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.png\"\r\n\r\nPNG-"
    );
    stream.write_all(head.as_bytes()).expect("send the start");
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout_secs"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let ping = reqwest::blocking::get(format!("{}/ping", server.url)).expect("ping");
    assert_eq!(ping.status(), 200);
}
