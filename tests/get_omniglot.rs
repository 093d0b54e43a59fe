//! `scripts/get-omniglot` against a local HTTP server standing in for Lake's repository: it
//! downloads and verifies every file, keeps intact files, and refuses a corrupted download.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

/// The files the script fetches, as Lake's repository lays them out under `python/`.
const REMOTE: [(&str, &str); 4] = [
    ("images_background.zip", "images_background.zip"),
    ("images_evaluation.zip", "images_evaluation.zip"),
    ("all_runs.zip", "one-shot-classification/all_runs.zip"),
    ("strokes_background_small2.zip", "strokes_background_small2.zip"),
];

/// `python3 -m http.server` on a free port, killed when dropped.
struct Server(Child, u16);

impl Server {
    fn serve(folder: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new("python3")
            .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
            .arg(folder)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self(child, port);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the local server did not start");
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/python", self.1)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A folder laid out like Lake's repository, with the data set's files (one of them changed by
/// `corrupt`, if given).
fn repository(root: &Path, corrupt: Option<&str>) -> PathBuf {
    let source = common::data_dir();
    for (name, remote) in REMOTE {
        let to = root.join("python").join(remote);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let mut bytes = std::fs::read(source.join(name)).unwrap();
        if corrupt == Some(name) {
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x5a;
        }
        std::fs::write(&to, bytes).unwrap();
    }
    root.to_path_buf()
}

fn get_omniglot(base_url: &str, dest: &Path) -> Output {
    Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/get-omniglot"))
        .arg("--dest")
        .arg(dest)
        .arg("--base-url")
        .arg(base_url)
        .output()
        .expect("the script runs")
}

#[test]
fn downloads_verify_and_intact_files_stay() {
    let work = common::temp_dir("get-omniglot");
    let server = Server::serve(&repository(&work.path().join("remote"), None));
    let dest = work.path().join("data");
    let first = get_omniglot(&server.base_url(), &dest);
    let said = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{said}\n{}", String::from_utf8_lossy(&first.stderr));
    for (name, _) in REMOTE {
        assert_eq!(
            std::fs::read(dest.join(name)).unwrap(),
            std::fs::read(common::data_dir().join(name)).unwrap()
        );
        assert!(said.contains(&format!("{name}: verified")), "{said}");
    }
    assert!(std::fs::read_to_string(dest.join("LICENSE")).unwrap().contains("MIT"));
    // The data loads from there.
    oneshot_data::DataSet::load(&dest).expect("the downloaded zips load");

    let again = get_omniglot(&server.base_url(), &dest);
    assert!(again.status.success());
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).matches("already here and intact").count(),
        REMOTE.len()
    );
}

#[test]
fn a_corrupted_download_is_refused() {
    let work = common::temp_dir("get-omniglot-corrupt");
    let server = Server::serve(&repository(&work.path().join("remote"), Some("all_runs.zip")));
    let dest = work.path().join("data");
    let result = get_omniglot(&server.base_url(), &dest);
    assert!(!result.status.success(), "a corrupted file must fail the download");
    let message = String::from_utf8_lossy(&result.stderr);
    assert!(message.contains("all_runs.zip: refused, its sha256 is"), "{message}");
    assert!(!dest.join("all_runs.zip").exists() && !dest.join("all_runs.zip.part").exists());
    // The intact files were kept.
    assert!(dest.join("images_background.zip").exists());
}

#[test]
fn a_missing_server_is_reported() {
    let work = common::temp_dir("get-omniglot-offline");
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let result = get_omniglot(&format!("http://127.0.0.1:{port}/python"), &work.path().join("data"));
    assert!(!result.status.success());
    assert!(String::from_utf8_lossy(&result.stderr).contains("download failed"));
}
