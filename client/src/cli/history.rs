//! `history`, `restore`, `rewind` and `undo`: print a path's versions, and
//! go back — first asking the server what would change (a dry run), then,
//! past 100 paths, asking the user before doing it.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use vidsync_client::api::RestoreOutcome;
use vidsync_client::config::FolderLink;
use vidsync_client::usecase::conflicts::Keep;
use vidsync_client::usecase::history::{self as uc, Going, Point};
use vidsync_client::Config;
use vidsync_protocol::{Change, Op};

use super::output::explain;

/// Changes of more paths than this are confirmed first (unless `--yes`).
const ASK_ABOVE: usize = 100;

pub fn going(
    to: Point,
    prefix: Option<String>,
    changed_by: Option<String>,
    dry_run: bool,
) -> Going {
    Going {
        to,
        paths: None,
        prefix,
        changed_by,
        dry_run,
    }
}

pub async fn history(dir: &Path, path: &Path, json: bool) -> Result<()> {
    let (_, events) = uc::history(dir, path).await.map_err(explain)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&events)?);
        return Ok(());
    }
    if events.is_empty() {
        println!("no versions of {} on the server", path.display());
        return Ok(());
    }
    println!(
        "{:>8}  {:<25} {:<12} {:<20} {:<6} {:>12}",
        "SEQ", "TIME", "USER", "CLIENT", "OP", "SIZE"
    );
    for e in &events {
        let size = e
            .change
            .size
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".into());
        println!(
            "{:>8}  {:<25} {:<12} {:<20} {:<6} {:>12}",
            e.seq,
            e.created_at,
            e.origin.user,
            e.origin.client_id,
            e.change.op.as_str(),
            size
        );
    }
    println!(
        "restore one with: vidsync restore {} --at SEQ",
        path.display()
    );
    Ok(())
}

pub async fn restore(dir: &Path, path: &Path, at: Point, yes: bool) -> Result<()> {
    let cfg = Config::load(dir)?;
    let (link, p) = uc::locate(&cfg, path).map_err(explain)?;
    // A folder restores everything under it.
    let (paths, prefix) = if path.is_dir() {
        (None, Some(format!("{}/", p.as_str())))
    } else {
        (Some(vec![p.as_str().to_string()]), None)
    };
    let going = Going {
        to: at,
        paths,
        prefix,
        changed_by: None,
        dry_run: false,
    };
    go(dir, &link, going, yes).await
}

pub async fn rewind(dir: &Path, project: Option<&str>, going: Going, yes: bool) -> Result<()> {
    let cfg = Config::load(dir)?;
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let link = uc::project_for(&cfg, project, &cwd).map_err(explain)?;
    go(dir, &link, going, yes).await
}

pub async fn conflicts(dir: &Path, project: Option<&str>) -> Result<()> {
    let cfg = Config::load(dir)?;
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let link = uc::project_for(&cfg, project, &cwd).map_err(explain)?;
    let list = vidsync_client::usecase::conflicts::list(dir, None, &link.project_id)
        .await
        .map_err(explain)?;
    if list.is_empty() {
        println!("no conflicts in {}", link.name);
    }
    for c in &list {
        println!(
            "{}  (a copy of {})",
            link.path.join(&c.copy).display(),
            c.original
        );
    }
    if !list.is_empty() {
        println!("resolve one with: vidsync resolve COPY --keep mine|theirs|both");
    }
    Ok(())
}

pub async fn resolve(dir: &Path, copy: &Path, keep: Keep) -> Result<()> {
    let cfg = Config::load(dir)?;
    let (link, p) = uc::locate(&cfg, copy).map_err(explain)?;
    let done =
        vidsync_client::usecase::conflicts::resolve(dir, None, &link.project_id, p.as_str(), keep)
            .await
            .map_err(explain)?;
    match keep {
        Keep::Mine => println!("{} now holds your version; the copy is gone", done.original),
        Keep::Theirs => println!("{} removed; {} stays as it is", done.copy, done.original),
        Keep::Both => println!("both kept: {} and {}", done.original, done.copy),
    }
    Ok(())
}

/// Dry run, print, confirm past [`ASK_ABOVE`], then the real restore.
async fn go(dir: &Path, link: &FolderLink, going: Going, yes: bool) -> Result<()> {
    let dry = Going {
        dry_run: true,
        ..going.clone()
    };
    let plan = uc::restore(dir, link, &dry).await.map_err(gone)?;
    let changes = plan.changes.clone().unwrap_or_default();
    print_plan(link, &plan, &changes);
    if going.dry_run || changes.is_empty() {
        return Ok(());
    }
    if changes.len() > ASK_ABOVE && !yes && !confirm(changes.len())? {
        bail!("nothing changed");
    }
    let done = uc::restore(dir, link, &going).await.map_err(gone)?;
    println!(
        "restored {} path(s) of {} to seq {} (new events up to seq {})",
        done.events.len(),
        link.name,
        done.at_seq,
        done.head_seq
    );
    Ok(())
}

fn print_plan(link: &FolderLink, plan: &RestoreOutcome, changes: &[Change]) {
    if changes.is_empty() {
        println!(
            "{} is already as it was at seq {}: nothing to change",
            link.name, plan.at_seq
        );
    }
    for c in changes.iter().take(50) {
        let what = match c.op {
            Op::Delete => "delete",
            Op::Create => "bring back",
            Op::Update => "restore",
        };
        println!("  {what:<10} {}", c.path.as_str());
    }
    if changes.len() > 50 {
        println!("  … and {} more", changes.len() - 50);
    }
    for k in &plan.kept {
        println!("  keep       {k} (changed by someone else since)");
    }
    if !changes.is_empty() {
        println!(
            "{} path(s) to change, back to seq {}",
            changes.len(),
            plan.at_seq
        );
    }
}

/// Asks on the terminal; refuses when there is none to ask on.
fn confirm(n: usize) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("{n} paths would change: run again with --yes to do it, or --dry-run to only look");
    }
    print!("change {n} paths? [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

/// A 410 says what to do next.
fn gone(e: vidsync_client::usecase::UseCaseError) -> anyhow::Error {
    let gone =
        matches!(&e, vidsync_client::usecase::UseCaseError::Api(a) if a.status() == Some(410));
    let e = explain(e);
    if gone {
        e.context("that version's content is no longer kept (the server's --keep-versions-days); pick a later one with `vidsync history`")
    } else {
        e
    }
}
