//! The page's one WebGPU device (a second initialisation fails: "a server is still registered
//! for device"), made on first use and shared by every engine of the page.

use std::cell::RefCell;

use burn::tensor::Device;

thread_local! {
    /// The device and its adapter's name, or why there is none.
    static GPU: RefCell<Option<Result<(Device, String), String>>> = const { RefCell::new(None) };
}

/// The page-wide WebGPU device and its adapter's name, initialised on first use.
pub async fn device() -> Result<(Device, String), String> {
    if let Some(known) = GPU.with(|gpu| gpu.borrow().clone()) {
        return known;
    }
    let result = match Device::wgpu_options().init_with_setup_async().await {
        Ok((device, setup)) => {
            let info = setup.adapter.get_info();
            let name = if info.name.is_empty() { format!("{:?}", info.backend) } else { info.name };
            Ok((device, name))
        }
        Err(e) => Err(short_reason(&e.to_string())),
    };
    GPU.with(|gpu| *gpu.borrow_mut() = Some(result.clone()));
    result
}

/// Burn's adapter errors list every graphics API it did not try; a person needs the gist.
fn short_reason(error: &str) -> String {
    let lower = error.to_lowercase();
    if lower.contains("no adapter") || lower.contains("no suitable") {
        "no WebGPU adapter available".into()
    } else {
        let first_line = error.lines().next().unwrap_or(error);
        format!("WebGPU failed: {}", first_line.chars().take(120).collect::<String>())
    }
}
