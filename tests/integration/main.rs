//! Integration tests: real upstream weights, real image files, a real server on port 0 over HTTP,
//! the real binary for the CLI.

mod api_document;
mod browser;
mod cli;
mod corpus;
mod docs_routes;
mod exactness;
mod explanations;
mod helpers;
mod hostile_input;
mod kserve_v1_routes;
mod kserve_v2_routes;
mod management;
mod model_routes;
mod onnx;
mod onnx_hostile;
mod onnx_routes;
mod operations;
mod python_clients;
mod several_models;
mod titanic;
mod titanic_routes;
mod torchserve_compat;
mod torchserve_mnist;
mod torchserve_routes;
mod unrouted;
mod weights;
