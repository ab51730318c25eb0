//! Background scan of a dataset folder for the launch form: its layout, the subjects
//! of each split, which structures they contain, and what could not be read.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crossbeam_channel::{Receiver, unbounded};
use eframe::egui;

use ctseg_core::dataset::{DatasetIndex, DatasetLayout, Split};

/// What the scan found so far.
#[derive(Debug, Clone, Default)]
pub struct DatasetScan {
    /// The folder.
    pub root: PathBuf,
    /// Layout, e.g. "TotalSegmentator".
    pub layout: Option<String>,
    /// Where the split came from (meta.csv, splits file, hash).
    pub split_source: String,
    /// Training subjects.
    pub train: Vec<String>,
    /// Validation subjects.
    pub val: Vec<String>,
    /// Test subjects (not used for training).
    pub test: usize,
    /// Subjects read so far.
    pub read: usize,
    /// Per structure label: subjects where it has voxels.
    pub structures: BTreeMap<u8, usize>,
    /// Subjects that could not be read, with the reason.
    pub problems: Vec<String>,
    /// The folder is not a dataset at all.
    pub error: Option<String>,
    /// The scan has finished.
    pub done: bool,
}

/// Progress of the scan thread.
#[derive(Debug)]
pub enum ScanMessage {
    /// The index was opened.
    Index {
        /// Layout name.
        layout: String,
        /// Split source.
        split_source: String,
        /// Training ids.
        train: Vec<String>,
        /// Validation ids.
        val: Vec<String>,
        /// Number of test subjects.
        test: usize,
    },
    /// One subject was read: the labels present.
    Subject(Vec<u8>),
    /// One subject could not be read.
    Problem(String),
    /// The folder is not a dataset.
    Error(String),
    /// Finished.
    Done,
}

impl DatasetScan {
    /// Apply one message of the scan thread.
    pub fn apply(&mut self, message: ScanMessage) {
        match message {
            ScanMessage::Index {
                layout,
                split_source,
                train,
                val,
                test,
            } => {
                self.layout = Some(layout);
                self.split_source = split_source;
                self.train = train;
                self.val = val;
                self.test = test;
            }
            ScanMessage::Subject(labels) => {
                self.read += 1;
                for l in labels {
                    *self.structures.entry(l).or_default() += 1;
                }
            }
            ScanMessage::Problem(p) => {
                self.read += 1;
                self.problems.push(p);
            }
            ScanMessage::Error(e) => self.error = Some(e),
            ScanMessage::Done => self.done = true,
        }
    }

    /// Subjects the scan reads in all.
    pub fn total(&self) -> usize {
        self.train.len() + self.val.len() + self.test
    }
}

/// Start scanning `root` on a thread; the messages arrive on the receiver and each
/// one wakes `ctx`.
pub fn start(
    root: PathBuf,
    val_fraction: f64,
    seed: u64,
    ctx: egui::Context,
) -> (DatasetScan, Receiver<ScanMessage>) {
    let (tx, rx) = unbounded();
    let scan = DatasetScan {
        root: root.clone(),
        ..DatasetScan::default()
    };
    std::thread::spawn(move || {
        let send = |m: ScanMessage| {
            let ok = tx.send(m).is_ok();
            ctx.request_repaint();
            ok
        };
        let index = match DatasetIndex::open(&root, val_fraction, seed) {
            Ok(i) => i,
            Err(e) => {
                send(ScanMessage::Error(e.to_string()));
                send(ScanMessage::Done);
                return;
            }
        };
        let ids = |split: Split| -> Vec<String> {
            index
                .cases
                .iter()
                .filter(|c| c.split == split)
                .map(|c| c.id.clone())
                .collect()
        };
        let layout = match index.layout {
            DatasetLayout::TotalSegmentator => "TotalSegmentator",
            DatasetLayout::NnUnet => "nnU-Net raw",
            DatasetLayout::SingleSubject => {
                "one TotalSegmentator subject (trains and validates on it)"
            }
        };
        let mut train = ids(Split::Train);
        let mut val = ids(Split::Val);
        if index.layout == DatasetLayout::SingleSubject {
            train = index.cases.iter().map(|c| c.id.clone()).collect();
            val = train.clone();
        }
        let test =
            index
                .cases
                .len()
                .saturating_sub(if index.layout == DatasetLayout::SingleSubject {
                    index.cases.len()
                } else {
                    train.len() + val.len()
                });
        if !send(ScanMessage::Index {
            layout: layout.to_string(),
            split_source: index.split_source.clone(),
            train,
            val,
            test,
        }) {
            return;
        }
        for case in &index.cases {
            let message = match index.load(case) {
                Ok(subject) => {
                    let mut seen = [false; 256];
                    for &l in subject.segmentation.labels.data() {
                        seen[l as usize] = true;
                    }
                    ScanMessage::Subject((1..=255u8).filter(|&l| seen[l as usize]).collect())
                }
                Err(e) => ScanMessage::Problem(format!("{}: {e}", case.id)),
            };
            // The panel went away or started another scan: stop reading.
            if !send(message) {
                return;
            }
        }
        send(ScanMessage::Done);
    });
    (scan, rx)
}
