//! Opening the lake for a command: the keyring, the pinned signers, the trusted snapshot, the
//! store and its keys, the query context.

// The crate root's imports and shared helpers, as a test module's `use super::*`.
use crate::*;

/// Opens the keyring of `--keyring`, or returns `None` when there is no such file.
pub(crate) fn open_keyring_if_present(cli: &Cli) -> anyhow::Result<Option<LocalKeyring>> {
    if !cli.allow_insecure_keyring {
        LocalKeyring::ensure_private(&cli.keyring)?;
    }
    match LocalKeyring::open(&cli.keyring) {
        Ok(keyring) => Ok(Some(keyring)),
        Err(error) if std::fs::metadata(&cli.keyring).is_err() => {
            tracing::debug!(%error, "no local keyring");
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

/// Returns the manifest signers to trust: the keyring's key, and each KMS key of
/// `signing_keys`, whose public half comes from KMS itself, never from the lake.
pub(crate) async fn pinned_signers(
    cli: &Cli,
    keyring: Option<&LocalKeyring>,
    signing_keys: &[String],
) -> anyhow::Result<Vec<verify::PinnedSigner>> {
    let mut pinned = Vec::new();
    if let Some(keyring) = keyring {
        let signer = keyring.signer();
        pinned.push(verify::PinnedSigner {
            key_id: signer.key_id().to_string(),
            public_key: signer.public_key().to_vec(),
            origin: "the keyring".to_string(),
        });
    }
    if !signing_keys.is_empty() {
        let sdk_config = sessionlake_storage::aws::load_sdk_config(
            cli.region.as_deref(),
            cli.profile.as_deref(),
        )
        .await;
        for key_id in signing_keys {
            let public =
                sessionlake_storage::signing::kms_public_key_with(&sdk_config, key_id.trim())
                    .await
                    .with_context(|| {
                        format!("failed to fetch the public key of --signing-key {key_id}")
                    })?;
            pinned.push(verify::PinnedSigner {
                key_id: public.key_arn,
                public_key: public.spki,
                origin: "--signing-key".to_string(),
            });
        }
    }
    Ok(pinned)
}

/// Returns the signer of what `command` writes: the KMS asymmetric key `signing_key` when one
/// is given, else the keyring's Ed25519 key.
pub(crate) async fn signer(
    cli: &Cli,
    signing_key: Option<&str>,
    keyring: Option<Arc<LocalKeyring>>,
    command: &str,
) -> anyhow::Result<Box<dyn sessionlake_storage::signing::ManifestSigner>> {
    match (signing_key, keyring) {
        (Some(key_id), _) => {
            let sdk_config = sessionlake_storage::aws::load_sdk_config(
                cli.region.as_deref(),
                cli.profile.as_deref(),
            )
            .await;
            let signer =
                sessionlake_storage::signing::KmsSigner::connect_with(&sdk_config, key_id.trim())
                    .await
                    .with_context(|| format!("failed to use --signing-key {key_id}"))?;
            Ok(Box::new(signer))
        }
        (None, Some(keyring)) => Ok(Box::new(sessionlake_storage::signing::KeyringSigner(keyring))),
        (None, None) => anyhow::bail!(
            "{command} signs with the keyring's key ({} does not exist) or a KMS key: give \
             --keyring or --signing-key",
            cli.keyring.display()
        ),
    }
}

/// Opens the lake for reading: its store, its key providers, and its trusted snapshot (see
/// [`trusted_snapshot`]) with the lake's id. With [`Scope::Session`], the snapshot holds that
/// session's objects (and some others, see [`Snapshot::open_latest_of`]): for a command that
/// reads one session only.
pub(crate) async fn open_reader(
    cli: &Cli,
    scope: Scope<'_>,
) -> anyhow::Result<(LakeStore, Keys, lake_tables::LakeSnapshot)> {
    let keyring = open_keyring_if_present(cli)?.map(Arc::new);
    let (store, keys) = open_lake_with(cli, keyring.clone()).await?;
    let pinned = pinned_signers(cli, keyring.as_deref(), &cli.signing_key).await?;
    // Readers start from the newest checkpoint a pinned signer made.
    let snapshot = Snapshot::open_latest_of(&store, &pinned, scope).await?;
    // A folder or prefix with no manifest answered "0 matching" as if it were an empty lake.
    anyhow::ensure!(
        snapshot.file_head().is_some(),
        "{} holds no manifest: it is not a sessionlake lake (is --lake right?), or nothing was \
         ingested into it yet",
        store.location()
    );
    warn_ignored(&snapshot);
    let lake_id = sessionlake_storage::manifest::committed_lake_id(&store, snapshot.live()).await?;
    let keys = keys.with_committed(snapshot.live());
    let mut live = snapshot.into_live();
    if cli.allow_partial {
        leave_out_missing(&store, &mut live).await?;
    }
    Ok((store, keys, lake_tables::LakeSnapshot { live, lake_id, checked: Arc::default() }))
}

/// Opens the lake for a one-shot writer job (`command`: retention, hold, shred, compact,
/// checkpoint): commits are signed by the first KMS key of `--signing-key`, else the keyring's
/// key, and only manifests the pinned signers signed (the keyring's key and `--signing-key`)
/// are trusted.
pub(crate) async fn open_writer(
    cli: &Cli,
    command: &'static str,
) -> anyhow::Result<sessionlake_keep::Lake> {
    let keyring = open_keyring_if_present(cli)?.map(Arc::new);
    let (store, keys) = open_lake_with(cli, keyring.clone()).await?;
    let signing_key = cli.signing_key.first().map(String::as_str);
    let signer = signer(cli, signing_key, keyring.clone(), command).await?;
    let pinned = pinned_signers(cli, keyring.as_deref(), &cli.signing_key).await?;
    let parts = sessionlake_keep::LakeParts {
        store,
        keys,
        keyring,
        signer,
        pinned,
        command,
        warn: warn_line,
    };
    Ok(sessionlake_keep::Lake::open(parts).await?)
}

/// For `--allow-partial`: takes the committed table files that are not in the lake with their
/// committed size out of `live`, naming each on stderr, and marks the answer partial.
pub(crate) async fn leave_out_missing(
    store: &LakeStore,
    live: &mut BTreeMap<String, ObjectEntry>,
) -> anyhow::Result<()> {
    let mut stored: HashMap<String, u64> = HashMap::new();
    for folder in [paths::COMMANDS_DIR, paths::SESSIONS_DIR, paths::ACCESS_DIR] {
        stored.extend(store.list(folder).await?);
    }
    let missing: Vec<String> = live
        .values()
        // Only what is gone: a file stored with another size is altered, an error either way.
        .filter(|entry| entry.kind.is_table() && !stored.contains_key(&entry.path))
        .map(|entry| entry.path.clone())
        .collect();
    for path in missing {
        let Some(entry) = live.remove(&path) else { continue };
        eprintln!(
            "sessionlake: warning: partial answer: {} was committed as {} bytes and it is \
             missing: its rows are left out",
            store.describe(&path),
            entry.size
        );
        output::mark_partial();
    }
    Ok(())
}

/// Reads the lake's chain and keeps only what the pinned signers (the keyring's key and
/// `--signing-key`) committed: the one way every command sees the lake. What it leaves out
/// (untrusted manifests, holes, forks) is said on stderr; writers that delete or rewrite
/// refuse it with [`Snapshot::ensure_trusted`].
pub(crate) async fn trusted_snapshot(
    cli: &Cli,
    store: &LakeStore,
    keyring: Option<&LocalKeyring>,
) -> anyhow::Result<Snapshot> {
    let pinned = pinned_signers(cli, keyring, &cli.signing_key).await?;
    let snapshot = Snapshot::open(store, &pinned).await?;
    warn_ignored(&snapshot);
    Ok(snapshot)
}

/// Says on stderr what the snapshot left out and why.
pub(crate) fn warn_ignored(snapshot: &Snapshot) {
    for line in snapshot.ignored() {
        warn_line(&line);
    }
}

/// Says one warning on stderr (`sessionlake: warning: …`).
pub(crate) fn warn_line(line: &str) {
    eprintln!("sessionlake: warning: {line}");
}

/// Opens the lake like [`open_lake`] with `keyring` already opened (a keyring under a
/// passphrase costs a key derivation each time it is opened).
pub(crate) async fn open_lake_with(
    cli: &Cli,
    keyring: Option<Arc<LocalKeyring>>,
) -> anyhow::Result<(LakeStore, Keys)> {
    let location = LakeLocation::parse(&cli.lake)?;
    if let LakeLocation::Local(path) = &location
        && std::fs::metadata(path).is_err()
    {
        anyhow::bail!("lake {} does not exist (run sessionlake-ingest first)", path.display());
    }
    // AWS configuration is loaded only when something points at AWS: an S3 lake, a region or
    // profile, or an endpoint. A local lake with a local keyring never touches the network.
    let aws_hinted = cli.region.is_some()
        || cli.profile.is_some()
        || ["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL"]
            .iter()
            .any(|name| std::env::var_os(name).is_some());
    let sdk_config = if matches!(location, LakeLocation::S3 { .. }) || aws_hinted {
        Some(
            sessionlake_storage::aws::load_sdk_config(
                cli.region.as_deref(),
                cli.profile.as_deref(),
            )
            .await,
        )
    } else {
        None
    };
    let lock = ObjectLockSettings::from_options(cli.object_lock_mode, cli.object_lock_days)?;
    let store = LakeStore::open(&location, sdk_config.as_ref())?.with_object_lock(lock);
    let keys = Keys::new(keyring, sdk_config).with_store(store.clone());
    Ok((store, keys))
}

/// Parses a size: bytes, or a number with KiB, MiB, GiB (or K, M, G, KB, MB, GB: powers of 1024
/// all the same).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a size such as 2GiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("{text:?} is not a size such as 2GiB")),
    };
    number
        .checked_mul(1 << shift)
        .filter(|bytes| *bytes > 0)
        .ok_or(format!("{text:?} is out of range"))
}

/// Returns the memory a query may hold: `--memory-limit`, else a quarter of the machine's
/// memory (`MemTotal` in /proc/meminfo; 1 GiB when that cannot be read).
pub(crate) fn memory_limit(cli: &Cli) -> usize {
    let total = || -> Option<u64> {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let line = info.lines().find(|line| line.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib.saturating_mul(1024) / 4)
    };
    let bytes = cli.memory_limit.or_else(total).unwrap_or(1 << 30);
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

/// Opens the lake's tables over the live files of `scope` that `choose` keeps (it sees the
/// manifest's view).
pub(crate) async fn open_tables<K: Fn(&str) -> bool>(
    cli: &Cli,
    scope: Scope<'_>,
    choose: impl FnOnce(&lake_tables::LakeSnapshot) -> K,
) -> anyhow::Result<SessionContext> {
    let (store, keys, snapshot) = open_reader(cli, scope).await?;
    let keep = choose(&snapshot);
    let ctx = lake_tables::new_context(memory_limit(cli))?;
    lake_tables::register(&ctx, &store, &snapshot, keys, &keep)?;
    Ok(ctx)
}
