//! `wgpt chat`: a streamed multi-turn chat in the terminal, with the model's own chat template
//! (or the project's ChatML), the KV cache kept between turns (only a turn's new tokens run), the
//! oldest turns dropped when the context is full — and said. Ctrl-C stops a reply, not the
//! program; Ctrl-C at the prompt, Ctrl-D or `/exit` ends it; `/reset` starts a new conversation.

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use wgpt::SamplingParams;
use wgpt::chat::Message;
use wgpt::engine::Engine;
use wgpt::model::block_on;

use crate::cli::{EngineArgs, Sampling, engine, open};

#[derive(Args)]
pub struct ChatArgs {
    #[arg(long)]
    model: std::path::PathBuf,
    /// A system message that opens the conversation (kept when old turns are dropped).
    #[arg(long)]
    system: Option<String>,
    /// The longest reply, in tokens.
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    #[command(flatten)]
    sampling: Sampling,
    #[command(flatten)]
    engine: EngineArgs,
}

/// Set while a reply streams: Ctrl-C then stops the reply instead of the program.
static GENERATING: AtomicBool = AtomicBool::new(false);
static STOP: AtomicBool = AtomicBool::new(false);

pub fn run(a: ChatArgs) -> Result<()> {
    let (params, seed) = a.sampling.params()?;
    a.engine.gpu_options()?;
    let loaded = open(&a.model)?;
    let model = engine(&loaded, &a.engine)?;
    let mut chat = Engine::new(loaded, model).context("a chat needs the model's tokenizer")?;
    ctrlc::set_handler(|| {
        if GENERATING.load(Ordering::SeqCst) {
            STOP.store(true, Ordering::SeqCst);
        } else {
            eprintln!();
            std::process::exit(130);
        }
    })
    .context("cannot catch Ctrl-C")?;
    eprintln!(
        "[{}: {} format, context {} tokens, seed {seed}; /reset starts over, Ctrl-C stops a reply, Ctrl-D ends]",
        chat.describe(),
        chat.text.chat_format_name(),
        chat.n_ctx()
    );
    let start: Vec<Message> = a.system.iter().map(|s| Message { role: "system".into(), content: s.clone() }).collect();
    let mut messages = start.clone();
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    let mut line = String::new();
    for turn in 0u64.. {
        write!(stdout, "> ")?;
        stdout.flush()?;
        line.clear();
        if stdin.lock().read_line(&mut line)? == 0 {
            writeln!(stdout)?;
            return Ok(());
        }
        let text = line.trim_end_matches(['\n', '\r']);
        match text.trim() {
            "" => continue,
            "/exit" | "/quit" => return Ok(()),
            "/reset" => {
                messages = start.clone();
                eprintln!("[a new conversation]");
                continue;
            }
            _ => {}
        }
        messages.push(Message { role: "user".into(), content: text.to_string() });
        // Each turn draws from its own stream of the seed, so a conversation is repeatable.
        let params = SamplingParams { seed: params.seed.wrapping_add(turn), ..params };
        match reply(&mut chat, &messages, params, a.max_tokens, &mut stdout) {
            Ok(text) => messages.push(Message { role: "assistant".into(), content: text }),
            Err(e) => {
                // The message that could not be answered is not kept.
                messages.pop();
                eprintln!("error: {e:#}");
            }
        }
    }
    Ok(())
}

/// Streams the assistant's reply to `messages`; returns its text.
fn reply(
    chat: &mut Engine,
    messages: &[Message],
    params: SamplingParams,
    max_tokens: usize,
    out: &mut impl Write,
) -> Result<String> {
    let reserve = max_tokens.min(chat.n_ctx() / 2);
    let prompt = chat.chat_prompt(messages, reserve)?;
    if prompt.dropped > 0 {
        eprintln!(
            "[the oldest {} message(s) no longer fit the context of {} tokens: dropped]",
            prompt.dropped,
            chat.n_ctx()
        );
    }
    chat.start(&prompt.ids, params, max_tokens, prompt.stop_tokens, prompt.stop_text)?;
    STOP.store(false, Ordering::SeqCst);
    GENERATING.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let (mut text, mut tokens) = (String::new(), 0);
    let finish = loop {
        if STOP.load(Ordering::SeqCst) {
            chat.stop();
            break "stopped".to_string();
        }
        let step = match block_on(chat.step(4)) {
            Ok(s) => s,
            Err(e) => {
                GENERATING.store(false, Ordering::SeqCst);
                return Err(e.into());
            }
        };
        tokens += step.tokens;
        write!(out, "{}", step.text)?;
        out.flush()?;
        text.push_str(&step.text);
        if let Some(f) = step.finish {
            break format!("{f:?}");
        }
    };
    GENERATING.store(false, Ordering::SeqCst);
    writeln!(out)?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!("[{tokens} tokens, {:.1} tokens/s, {finish}]", tokens as f64 / secs.max(1e-9));
    Ok(text)
}
