//! One file per area of the API.

pub mod demo;
pub mod docs;
pub mod explain;
pub mod fallback;
pub mod health;
pub mod kserve_v1;
pub mod kserve_v2;
pub mod management;
pub mod model;
pub mod torchserve;

use actix_web::web;

/// `samples/7.png` in base64: the example of the documented JSON bodies, so that Swagger UI's "Try
/// it out" classifies a real image.
pub const SEVEN_PNG_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAAAAABXZoBIAAAAz0lEQVR42mNgGLaguHLR379XscnYZ6/6/QcIfl1Dk5A88OjRxz9/T4Ek/zxElXO5DxZVF1Z3fPDnz3ZUyV1Ama85pkDWtD9/7oigyLl9+vPnnjWYuenPn15UjTv//DnkDGIIRn2AshAg+Ow+CTCj8s+fixI4vOn7/c+PLFxh8PfPnzRccm3///5VxyHHtv3vn2wm7HJcaX/+LhbALse74s+fPBz6GDT//LmJyzEas/9ck8clufTPH5w+1N78ZxouXzB0/rmLU47B+Y8/aQkKACq6YtFxdSH8AAAAAElFTkSuQmCC";

/// actix tries routes in this order, so the busiest and the cheapest to match come first; the
/// patterns that need a regex (KServe v1's `{model}:predict`, Swagger UI's files) come last.
pub fn configure(cfg: &mut web::ServiceConfig) {
    model::configure(cfg);
    health::configure(cfg);
    torchserve::configure(cfg);
    explain::configure(cfg);
    kserve_v2::configure(cfg);
    kserve_v1::configure(cfg);
    demo::configure(cfg);
    docs::configure(cfg);
}

/// Both APIs on one listener, as TorchServe serves them when `inference_address` and
/// `management_address` are the same: the management routes first, so that `/models` is the
/// management API's (the inference API's is its read-only half).
pub fn configure_both(cfg: &mut web::ServiceConfig) {
    management::configure_shared(cfg);
    configure(cfg);
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    #[test]
    fn the_documented_example_is_the_sample_seven() {
        let seven = include_bytes!("../../../samples/7.png");
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(seven),
            super::SEVEN_PNG_BASE64
        );
    }
}
