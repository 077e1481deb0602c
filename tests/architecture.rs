//! `ARCHITECTURE.md` against the code: its rejection table must match `ErrorCode::ALL`,
//! and every `crate::` path in `src/` must point down its layer tables. Also the
//! README's metric table against `Metric::ALL`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use wsctx::{ErrorCode, Rejection};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The body rows of the first Markdown table after the heading `heading`, split into
/// trimmed cells.
fn table(markdown: &str, heading: &str) -> Vec<Vec<String>> {
    let start = markdown
        .lines()
        .position(|line| line == heading)
        .unwrap_or_else(|| panic!("no heading {heading:?}"));
    markdown
        .lines()
        .skip(start + 1)
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2) // the header and the separator
        .map(|line| {
            let cells = line.trim().trim_matches('|').split(" | ");
            cells.map(|cell| cell.trim().to_owned()).collect()
        })
        .collect()
}

fn architecture() -> String {
    read(&root().join("ARCHITECTURE.md"))
}

#[test]
fn the_metric_table_in_the_readme_matches_the_code() {
    use wsctx::metrics::Metric;

    let rows = table(&read(&root().join("README.md")), "## Metrics");
    let documented: Vec<[&str; 3]> = rows
        .iter()
        .map(|row| [row[0].as_str(), row[1].as_str(), row[2].as_str()])
        .collect();
    let names: Vec<String> = Metric::ALL
        .iter()
        .map(|metric| format!("`{}`", metric.name()))
        .collect();
    let labels: Vec<String> = Metric::ALL
        .iter()
        .map(|metric| {
            metric
                .label()
                .map_or("—".to_owned(), |label| format!("`{label}`"))
        })
        .collect();
    let expected: Vec<[&str; 3]> = Metric::ALL
        .iter()
        .enumerate()
        .map(|(i, metric)| {
            [
                names[i].as_str(),
                metric.kind().as_str(),
                labels[i].as_str(),
            ]
        })
        .collect();
    assert_eq!(
        documented, expected,
        "name, kind and label, in the order of Metric::ALL"
    );
}

#[test]
fn the_rejection_table_in_architecture_md_matches_the_code() {
    let rows = table(&architecture(), "## Rejection table");
    let names: Vec<&str> = rows.iter().map(|row| row[0].as_str()).collect();
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
    assert_eq!(names, codes, "the rows, in the order of ErrorCode::ALL");
    let dash = |cell: Option<String>| cell.unwrap_or_else(|| "—".to_owned());
    for (row, code) in rows.iter().zip(ErrorCode::ALL) {
        let rejection = Rejection::new(code);
        let expected = [
            dash(code.http_status().map(|status| status.to_string())),
            code.close_code().to_string(),
            code.retry().as_str().to_owned(),
            dash(
                rejection
                    .retry_after()
                    .map(|after| after.as_secs().to_string()),
            ),
        ];
        assert_eq!(
            row[2..],
            expected,
            "{code}: HTTP, close, retry, Retry-After"
        );
    }
}

/// The modules of each row of a layer table: `(layer, module)` pairs.
fn layers(heading: &str) -> BTreeMap<String, usize> {
    let mut layers = BTreeMap::new();
    for row in table(&architecture(), heading) {
        let layer: usize = row[0].parse().expect("a layer number");
        for module in row[1].split(", ") {
            layers.insert(module.trim_matches('`').to_owned(), layer);
        }
    }
    layers
}

/// The source of `path` without comment lines (doc links are not dependencies).
fn code_of(path: &Path) -> String {
    read(path)
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The identifiers that follow each `prefix` in `code`.
fn paths_after<'a>(code: &'a str, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    code.match_indices(prefix).map(move |(at, _)| {
        let rest = &code[at + prefix.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        &rest[..end]
    })
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_module_uses_only_lower_layers() {
    let layers = layers("## Layers");
    let allowed_cycles = [("context", "state"), ("state", "context")];
    let src = root().join("src");
    let mut modules: Vec<(String, Vec<PathBuf>)> = rust_files(&src)
        .into_iter()
        .map(|path| {
            (
                path.file_stem().unwrap().to_string_lossy().into_owned(),
                vec![path],
            )
        })
        .filter(|(name, _)| name != "lib")
        .collect();
    // A directory is part of its module: `src/factory/` (a `mod.rs` module) or
    // `src/axum/` (the submodules of `src/axum.rs`).
    let mut dirs: Vec<PathBuf> = fs::read_dir(&src)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let files = rust_files(&dir);
        match modules.iter_mut().find(|(module, _)| *module == name) {
            Some((_, existing)) => existing.extend(files),
            None => modules.push((name, files)),
        }
    }
    let mut violations = Vec::new();
    for (module, files) in &modules {
        let Some(&layer) = layers.get(module) else {
            violations.push(format!("{module} is in no layer of ARCHITECTURE.md"));
            continue;
        };
        for file in files {
            let code = code_of(file);
            for used in paths_after(&code, "crate::") {
                let Some(&used_layer) = layers.get(used) else {
                    continue; // a re-exported item, not a module
                };
                if used != module
                    && used_layer >= layer
                    && !allowed_cycles.contains(&(module.as_str(), used))
                {
                    violations.push(format!(
                        "{} (layer {layer}) uses {used} (layer {used_layer})",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn every_factory_file_uses_only_the_files_above_it() {
    let order = layers("### Inside the factory");
    let mut violations = Vec::new();
    for file in rust_files(&root().join("src/factory")) {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let Some(&own) = order.get(&name) else {
            violations.push(format!("factory/{name}.rs is not in ARCHITECTURE.md"));
            continue;
        };
        let code = code_of(&file);
        let used = paths_after(&code, "crate::factory::").chain(paths_after(&code, "super::"));
        for used in used {
            if let Some(&other) = order.get(used)
                && other >= own
                && used != name
            {
                violations.push(format!("factory/{name}.rs ({own}) uses {used} ({other})"));
            }
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
}
