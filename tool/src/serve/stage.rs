//! Where the served book comes from: `book/` copied to a staging directory,
//! the lab's quick-run files laid over its `generated/`, and the whole built
//! in-process by mdbook-driver, exactly as `mdbook build` would build it.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Every directory `serve` reads or writes, under the project's root.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The project: `book.toml` and `book/`.
    pub root: PathBuf,
    /// `book/`, the sources as the reader edits them.
    pub book: PathBuf,
    /// `target/serve/stage/`: `book.toml` and `book/` as built.
    pub stage: PathBuf,
    /// `target/serve/site/`: the HTML served.
    pub site: PathBuf,
    /// `target/serve/overlay/`: the generated files of the lab's quick runs,
    /// laid over `book/generated/` when staging (a quick run never writes
    /// the book's own records).
    pub overlay: PathBuf,
    /// `target/serve/quick/`: where the lab's quick runs write.
    pub quick_out: PathBuf,
    /// `target/reference/`: the book's records as they were when `serve` or
    /// a run first started, for comparing a reader's run with them.
    pub reference: PathBuf,
}

impl Paths {
    pub fn under(root: &Path) -> Paths {
        let serve = root.join("target").join("serve");
        Paths {
            root: root.to_path_buf(),
            book: root.join("book"),
            stage: serve.join("stage"),
            site: serve.join("site"),
            overlay: serve.join("overlay"),
            quick_out: serve.join("quick"),
            reference: crate::reproduce::room::reference_dir(root),
        }
    }

    /// `book/generated/`, where full runs write.
    pub fn generated(&self) -> PathBuf {
        self.book.join("generated")
    }
}

/// What the served site is: which build, and the last build's error.
#[derive(Debug, Default)]
pub struct Site {
    state: Mutex<SiteState>,
}

#[derive(Debug, Default, Clone)]
pub struct SiteState {
    /// Goes up by one with every successful build; a page that saw another
    /// generation reloads.
    pub generation: u64,
    /// Why the last build failed, in one line (the site stays the last good one).
    pub error: Option<String>,
}

impl Site {
    pub fn state(&self) -> SiteState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stages and builds the book; on success the new site replaces the old
    /// one and the generation goes up.
    pub fn rebuild(&self, paths: &Paths) -> Result<(), String> {
        let built = stage(paths).and_then(|()| build(paths));
        if let Ok(mut state) = self.state.lock() {
            match &built {
                Ok(()) => {
                    state.generation += 1;
                    state.error = None;
                }
                Err(message) => state.error = Some(message.clone()),
            }
        }
        built
    }
}

/// Copies `book.toml` and `book/` to the staging directory, then the
/// overlay's files over its `generated/`, and links the code the pages include.
fn stage(paths: &Paths) -> Result<(), String> {
    let toml = paths.root.join("book.toml");
    if !toml.is_file() || !paths.book.join("SUMMARY.md").is_file() {
        return Err(format!(
            "no book in {}: it needs book.toml and book/SUMMARY.md (run serve from the project's clone)",
            paths.root.display()
        ));
    }
    let _ = std::fs::remove_dir_all(&paths.stage);
    let staged_book = paths.stage.join("book");
    copy_tree(&paths.book, &staged_book)?;
    copy_file(&toml, &paths.stage.join("book.toml"))?;
    if paths.overlay.is_dir() {
        copy_tree(&paths.overlay, &staged_book.join("generated"))?;
    }
    // The pages include code as `../examples/...`, `../src/...` and
    // `../tool/src/...`: the staged book sees the project's own, as they are.
    for code in CODE {
        let target = paths.root.join(code);
        if target.is_dir() {
            let _ =
                std::fs::create_dir_all(paths.stage.join(code).parent().unwrap_or(&paths.stage));
            std::os::unix::fs::symlink(&target, paths.stage.join(code)).map_err(|error| {
                format!(
                    "cannot link {} into the staged book: {error}",
                    target.display()
                )
            })?;
        }
    }
    Ok(())
}

/// The code the pages include, relative to the book's top level.
pub const CODE: [&str; 3] = ["examples", "src", "tool/src"];

/// Builds the staged book into a new directory, then swaps it in, so a
/// request never sees a half-built site.
fn build(paths: &Paths) -> Result<(), String> {
    let next = paths.site.with_extension("next");
    let _ = std::fs::remove_dir_all(&next);
    let mut book = mdbook_driver::MDBook::load(&paths.stage)
        .map_err(|error| format!("the book does not load: {}", one_line(&error)))?;
    book.config.build.build_dir = next.clone();
    book.build()
        .map_err(|error| format!("the book does not build: {}", one_line(&error)))?;
    let old = paths.site.with_extension("old");
    let _ = std::fs::remove_dir_all(&old);
    if paths.site.exists() {
        std::fs::rename(&paths.site, &old)
            .map_err(|error| format!("cannot replace {}: {error}", paths.site.display()))?;
    }
    std::fs::rename(&next, &paths.site)
        .map_err(|error| format!("cannot move the new site into place: {error}"))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// An error and its causes, on one line.
fn one_line(error: &impl std::fmt::Debug) -> String {
    format!("{error:?}")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn copy_file(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(from, to).map(|_| ()).map_err(|error| {
        format!(
            "cannot copy {} to {}: {error}",
            from.display(),
            to.display()
        )
    })
}

/// Copies every file under `from` to the same place under `to`.
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to)
        .map_err(|error| format!("cannot create {}: {error}", to.display()))?;
    let entries = std::fs::read_dir(from)
        .map_err(|error| format!("cannot read {}: {error}", from.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_tree(&path, &target)?;
        } else {
            copy_file(&path, &target)?;
        }
    }
    Ok(())
}

/// A fingerprint of every file's path, size and modification time under
/// `dirs`: it changes when a file is written, added or removed.
pub fn fingerprint(dirs: &[&Path]) -> u64 {
    fn walk(dir: &Path, hasher: &mut DefaultHasher) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, hasher);
            } else if let Ok(meta) = std::fs::metadata(&path) {
                path.hash(hasher);
                meta.len().hash(hasher);
                meta.modified().ok().hash(hasher);
            }
        }
    }
    let mut hasher = DefaultHasher::new();
    for dir in dirs {
        walk(dir, &mut hasher);
    }
    hasher.finish()
}

/// Keeps a copy of the book's records as they are the first time `serve`
/// (or a run) starts in this clone: the reference a reader's runs are
/// compared with.
pub fn keep_reference(paths: &Paths) {
    crate::reproduce::room::keep_reference(&paths.generated(), &paths.reference);
}

/// Whether `file` is one of chapter `n`'s generated files
/// (`chapterN.json`, `chapterN_*.md`, `chapterN_*.svg`, ...).
pub fn belongs_to(file: &str, n: u32) -> bool {
    let prefix = format!("chapter{n}");
    file.strip_prefix(&prefix)
        .is_some_and(|rest| rest.starts_with('_') || rest.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::belongs_to;

    #[test]
    fn a_chapters_files_are_told_apart_from_chapter_tens() {
        assert!(belongs_to("chapter1.json", 1));
        assert!(belongs_to("chapter1_five_sleeps.md", 1));
        assert!(!belongs_to("chapter10_stall.md", 1));
        assert!(!belongs_to("chapter10.json", 1));
        assert!(belongs_to("chapter10.json", 10));
        assert!(!belongs_to("run_times.md", 1));
    }
}
