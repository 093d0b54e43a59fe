//! The `oneshot` command line end to end: training (with resume), evaluation, bad input.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn oneshot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oneshot"))
        .args(args)
        .arg("--data-dir")
        .arg(common::data_dir())
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn train_args<'a>(out: &'a str, iterations: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--preset",
        "web",
        "--objective",
        "episodes",
        "--way",
        "5",
        "--iterations",
        iterations,
        "--eval-every",
        "2",
        "--val-tasks",
        "2",
        "--learning-rate",
        "1e-3",
        "--out",
        out,
    ]
}

#[test]
fn train_checkpoints_resumes_and_evaluates() {
    let dir = common::temp_dir("oneshot-train");
    let out = dir.path().join("run");
    let out_str = out.to_str().unwrap();

    let first = oneshot(&train_args(out_str, "2"));
    assert!(first.status.success(), "{}", text(&first.stderr));
    for file in ["state.json", "network-0000002.osw", "best.osw", "optimizer-0000002.bpk", "validation.svg"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let state = |dir: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap()
    };
    let history = |dir: &Path| state(dir)["history"].as_array().unwrap().clone();
    assert_eq!(history(&out).len(), 1);

    // Resuming continues from step 2 and draws what an unbroken run would.
    let resumed = oneshot(&train_args(out_str, "4"));
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    assert!(text(&resumed.stderr).contains("resuming"), "{}", text(&resumed.stderr));
    assert_eq!(state(&out)["iteration"], 4);
    assert_eq!(history(&out).len(), 2);
    // Only the checkpoint the state names is kept.
    assert!(out.join("network-0000004.osw").is_file() && !out.join("network-0000002.osw").exists());

    // A fixed seed reproduces the run, and the resumed run matches an unbroken one.
    let unbroken_dir = dir.path().join("unbroken");
    let unbroken = oneshot(&train_args(unbroken_dir.to_str().unwrap(), "4"));
    assert!(unbroken.status.success());
    let (resumed, unbroken) = (history(&out), history(&unbroken_dir));
    assert_eq!(resumed.len(), unbroken.len());
    for (r, u) in resumed.iter().zip(&unbroken) {
        assert_eq!(r["loss"], u["loss"]);
        assert_eq!(r["accuracy"], u["accuracy"]);
    }

    // Other options in the same folder are refused rather than mixed into the run.
    let mut changed = train_args(out_str, "6");
    changed.extend(["--seed", "7"]);
    let refused = oneshot(&changed);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("--seed"), "{}", text(&refused.stderr));

    // The trained weights evaluate, beside the baseline.
    let best = out.join("best.osw");
    let eval = oneshot(&["eval", "--weights", best.to_str().unwrap(), "--tasks", "10", "--way", "5,20"]);
    assert!(eval.status.success(), "{}", text(&eval.stderr));
    let table = text(&eval.stdout);
    // The page's views and pens by default: the plain drawing and its seven other symmetries,
    // as drawn and one pixel narrower.
    assert!(
        table.contains("siamese (web, 8 views), pens 0,-1 |") && table.contains("1-NN on 32×32 pixels"),
        "{table}"
    );
    assert!(table.contains("all_runs.zip (20 runs) | 400 |"), "{table}");
    assert!(table.contains("5-way random") && table.contains("20-way random"), "{table}");

    // Packed with itself into a committee, it answers as one recognizer of two networks.
    let pair = out.join("pair.osw");
    let (best, pair_str) = (best.to_str().unwrap(), pair.to_str().unwrap());
    let packed = oneshot(&["pack", "--weights", best, "--with", best, "--out", pair_str]);
    assert!(packed.status.success(), "{}", text(&packed.stderr));
    assert!(text(&packed.stdout).contains("a committee of 2 networks"), "{}", text(&packed.stdout));
    let eval = oneshot(&["eval", "--weights", pair_str, "--tasks", "0"]);
    assert!(eval.status.success(), "{}", text(&eval.stderr));
    assert!(text(&eval.stdout).contains("siamese (web, 8 views, committee of 2)"), "{}", text(&eval.stdout));

    // Another network on the same trials, compared with the first trial by trial: the pair
    // against itself differs on no trial; the shipped committee against the six-step network
    // differs by exactly what their accuracies do.
    let versus = |weights: &str, other: &str, tasks: &str| {
        oneshot(&[
            "eval",
            "--weights",
            weights,
            "--versus",
            other,
            "--no-runs",
            "--tasks",
            tasks,
            "--way",
            "5",
        ])
    };
    let eval = versus(pair_str, pair_str, "4");
    assert!(eval.status.success(), "{}", text(&eval.stderr));
    let table = text(&eval.stdout);
    assert!(table.contains(&format!("pens 0,-1 from {pair_str} | 5-way random")), "{table}");
    assert!(table.contains("| 0 | 0 | +0.00 points | 0.00 |"), "{table}");
    let eval = versus("weights/web.osw", best, "20");
    assert!(eval.status.success(), "{}", text(&eval.stderr));
    let table = text(&eval.stdout);
    let cells = |line: &str| line.split('|').map(str::trim).map(String::from).collect::<Vec<_>>();
    let accuracy = |row: &str| row.trim_end_matches(" %").parse::<f64>().unwrap();
    let rows: Vec<Vec<String>> = table.lines().filter(|l| l.contains("5-way random")).map(cells).collect();
    let (shipped, trained) = (accuracy(&rows[0][4]), accuracy(&rows[1][4]));
    assert!(rows[1][1].ends_with(&format!("from {best}")), "{table}");
    let paired = rows.iter().find(|r| r.len() == 8).unwrap_or_else(|| panic!("no paired row: {table}"));
    let (gained, lost): (f64, f64) = (paired[3].parse().unwrap(), paired[4].parse().unwrap());
    assert!(lost > 0.0, "the shipped committee beats six steps of training: {table}");
    assert!(((gained - lost) * 100.0 / 20.0 - (trained - shipped)).abs() < 1e-9, "{table}");

    // Rescored at test time: one row without demotion, one per demotion.
    let rescored = ["--pens", "-1,0", "--size-penalty", "1", "--hubness", "0.35:3"];
    let eval = oneshot(
        &[&["eval", "--weights", pair_str, "--no-runs", "--tasks", "3", "--way", "5"], &rescored[..]]
            .concat(),
    );
    assert!(eval.status.success(), "{}", text(&eval.stderr));
    let table = text(&eval.stdout);
    assert!(table.contains("committee of 2), pens -1,0, size penalty 1 |"), "{table}");
    assert!(
        table.contains("committee of 2), pens -1,0, size penalty 1, hubs demoted α 0.35 k 3 |"),
        "{table}"
    );
}

/// The values of every tensor of a weights file (parameter ids aside).
fn tensor_values(path: &Path) -> Vec<Vec<f32>> {
    let file = oneshot_core::weights::read(&std::fs::read(path).unwrap()).unwrap();
    file.tensors.into_iter().map(|t| t.values).collect()
}

#[test]
fn a_killed_run_resumes_to_the_same_network() {
    let dir = common::temp_dir("oneshot-kill");
    let (killed, unbroken) = (dir.path().join("killed"), dir.path().join("unbroken"));
    let steps = "40";
    // Killed with SIGKILL (no chance to clean up) once it is well under way.
    let mut child = Command::new(env!("CARGO_BIN_EXE_oneshot"))
        .args(train_args(killed.to_str().unwrap(), steps))
        .arg("--data-dir")
        .arg(common::data_dir())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let reached = |step: u64| {
        std::fs::read(killed.join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["iteration"].as_u64())
            .is_some_and(|i| i >= step)
    };
    let started = std::time::Instant::now();
    while !reached(11) && started.elapsed().as_secs() < 600 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the run was killed before it finished");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(killed.join("state.json")).unwrap()).unwrap();
    let stopped = state["iteration"].as_u64().unwrap();
    assert!((12..40).contains(&stopped), "killed at step {stopped}");

    let resumed = oneshot(&train_args(killed.to_str().unwrap(), steps));
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    assert!(text(&resumed.stderr).contains(&format!("resuming {} at step {stopped}", killed.display())));
    let whole = oneshot(&train_args(unbroken.to_str().unwrap(), steps));
    assert!(whole.status.success());
    let history = |dir: &Path| -> serde_json::Value {
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(dir.join("state.json")).unwrap()).unwrap()
            ["history"]
            .clone()
    };
    let strip = |mut h: serde_json::Value| {
        h.as_array_mut().unwrap().iter_mut().for_each(|p| p["seconds"] = 0.into());
        h
    };
    assert_eq!(strip(history(&killed)), strip(history(&unbroken)));
    assert_eq!(
        tensor_values(&killed.join("network-0000040.osw")),
        tensor_values(&unbroken.join("network-0000040.osw"))
    );
}

#[test]
fn koch_preset_trains() {
    let dir = common::temp_dir("oneshot-koch");
    let out = dir.path().join("koch");
    let run = oneshot(&[
        "train",
        "--preset",
        "koch",
        "--iterations",
        "1",
        "--batch-size",
        "4",
        "--eval-every",
        "1",
        "--val-tasks",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let bytes = std::fs::read(out.join("best.osw")).unwrap();
    let config = oneshot_core::weights::read_config(&bytes).unwrap();
    assert_eq!(config, oneshot_core::architecture::Preset::Koch.config());
}

/// `scripts/train-web`, the one command that trains the shipped committee, shortened by options
/// appended to its recipe (the last value of an option wins): both networks train with the
/// recipe's other options, the second with chimeras, and land packed in one file; run again, it
/// resumes both finished runs, trains nothing more and packs them again.
#[test]
fn the_committee_recipe_trains_two_networks_and_packs_them() {
    let dir = common::temp_dir("oneshot-train-web");
    let out = dir.path().join("committee");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/train-web");
    let run = || {
        Command::new("bash")
            .arg(&script)
            .arg(&out)
            .args(["--iterations", "2", "--eval-every", "2", "--val-tasks", "2", "--data-dir"])
            .arg(common::data_dir())
            .env("ONESHOT_BIN", env!("CARGO_BIN_EXE_oneshot"))
            .output()
            .expect("bash runs the script")
    };
    let first = run();
    assert!(first.status.success(), "{}", text(&first.stderr));
    let options = |name: &str| -> serde_json::Value {
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(name).join("state.json")).unwrap()).unwrap();
        assert_eq!(state["iteration"], 2, "{name}: the appended --iterations wins");
        state["options"].clone()
    };
    let (plain, chimeras) = (options("first"), options("chimeras"));
    for recipe in [&plain, &chimeras] {
        assert_eq!(recipe["way"], 40);
        assert_eq!(recipe["symmetries"], "Dihedral");
        assert_eq!(recipe["stroke_widths"], true);
    }
    assert!(plain["chimeras"].is_null() && plain["fragments"].is_null());
    assert_eq!((chimeras["fragments"].as_f64(), chimeras["chimeras"].as_f64()), (Some(0.3), Some(0.2)));

    let committee = || {
        let packed = std::fs::read(out.join("web.osw")).unwrap();
        let members = oneshot_core::weights::committee::members(&packed).expect("a committee file");
        assert_eq!(members.len(), 2);
        assert!(members[0] != members[1], "two networks trained apart");
    };
    committee();
    let best = || ["first", "chimeras"].map(|name| std::fs::read(out.join(name).join("best.osw")).unwrap());
    let trained = best();

    let again = run();
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(text(&again.stderr).matches("resuming").count(), 2, "{}", text(&again.stderr));
    assert!(best() == trained, "a finished run trained again");
    committee();
}

/// Asserts that a run failed and said each of `needles` on stderr.
fn assert_fails(run: Output, needles: &[&str]) {
    let stderr = text(&run.stderr);
    assert!(!run.status.success(), "succeeded: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
    }
}

#[test]
fn bad_input_fails_with_a_message_and_writes_nothing() {
    let dir = common::temp_dir("oneshot-bad");
    let missing = dir.path().join("nowhere");
    let without_data = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_oneshot"))
            .args(args)
            .arg("--data-dir")
            .arg(&missing)
            .output()
            .expect("the binary runs")
    };
    assert_fails(without_data(&["eval", "--tasks", "0"]), &["all_runs.zip"]);

    let garbage = dir.path().join("garbage.osw");
    std::fs::write(&garbage, b"ONESHOTW\x05\x00\x00\x00{oops").unwrap();
    assert_fails(
        oneshot(&["eval", "--weights", garbage.to_str().unwrap(), "--tasks", "0"]),
        &["garbage.osw", "header"],
    );

    assert_fails(
        oneshot(&["eval", "--tasks", "5", "--no-runs", "--alphabets", "Klingon"]),
        &["unknown alphabet"],
    );
    assert_fails(
        oneshot(&["eval", "--weights", "weights/web.osw", "--tasks", "5", "--adapt-norms", "1.5"]),
        &["\"1.5\" is not a number from 0 to 1"],
    );
    assert_fails(
        oneshot(&["eval", "--weights", "weights/web.osw", "--tasks", "5", "--pens", "-1,4"]),
        &["4"],
    );
    assert_fails(
        oneshot(&["eval", "--weights", "weights/web.osw", "--tasks", "5", "--size-penalty=-1"]),
        &["\"-1\" is not a number of 0 or more"],
    );

    // Converting needs one network: the shipped committee of two is refused, saying so.
    let one = dir.path().join("one.osw");
    assert_fails(
        oneshot(&["pack", "--weights", "weights/web.osw", "--out", one.to_str().unwrap()]),
        &["committee of 2 networks"],
    );
    assert!(!one.exists());
    // Its first network alone is the plain file it was packed from.
    let first =
        oneshot(&["pack", "--weights", "weights/web.osw", "--network", "1", "--out", one.to_str().unwrap()]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let shipped = std::fs::read("weights/web.osw").unwrap();
    let packed = oneshot_core::weights::read(&std::fs::read(&one).unwrap()).unwrap();
    let original =
        oneshot_core::weights::read(oneshot_core::weights::committee::members(&shipped).unwrap()[0]).unwrap();
    assert_eq!(
        packed.tensors.iter().map(|t| &t.values).collect::<Vec<_>>(),
        original.tensors.iter().map(|t| &t.values).collect::<Vec<_>>()
    );
    assert_fails(
        oneshot(&["pack", "--weights", "weights/web.osw", "--network", "3", "--out", one.to_str().unwrap()]),
        &["holds 2 network(s), not a network 3"],
    );

    let out = dir.path().join("never");
    assert_fails(
        without_data(&["train", "--iterations", "1", "--out", out.to_str().unwrap()]),
        &["images_background.zip"],
    );
    assert!(!out.exists(), "a failed run left {} behind", out.display());
    assert_fails(
        oneshot(&["train", "--objective", "episodes", "--drawings", "21", "--out", out.to_str().unwrap()]),
        &["drawings per character must be 2 to 20"],
    );
    assert!(!out.exists(), "a refused run left {} behind", out.display());
}

#[test]
fn bench_runs_once_and_prints_a_table() {
    let out = oneshot(&["bench", "--weights", "weights/web.osw", "--repetitions", "1", "--train-steps", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| web |")).collect();
    assert_eq!(rows.len(), 5, "{table}");
    assert!(rows.iter().any(|r| r.contains("20-way query")), "{table}");
    assert!(
        rows.iter().filter(|r| r.contains("training step")).all(|r| !r.trim_end().ends_with("|  |")),
        "{table}"
    );
}
