"""The `dhif` command: train | test | fuse | convert | demo | info."""
import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time

import torch


def _number(kind, minimum, description):
    """An argparse type: a number of `kind` no smaller than `minimum`, refused in one line."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {description}, got {text!r}") from None
        if not value >= minimum:  # also refuses NaN
            raise argparse.ArgumentTypeError(f"expected {description}, got {text}")
        return value
    return parse


positive_int = _number(int, 1, "a positive integer")
non_negative_int = _number(int, 0, "an integer >= 0")
positive_float = _number(float, 1e-9, "a positive number")


def _add_size_args(parser, defaults, whose: str = ""):
    """--stages, --width and --head-width of a model (`whose`: which one, in the help)."""
    parser.add_argument("--stages", type=positive_int, default=defaults.stages, help=f"unrolled stages{whose}")
    parser.add_argument("--width", type=positive_int, default=defaults.width,
                        help=f"U-Net base width{whose} (64 in the paper)")
    parser.add_argument("--head-width", type=positive_int, default=defaults.head_width,
                        help=f"hidden width of the filter heads{whose} (default taps x bands, as in the paper)")


def _add_model_args(parser, defaults):
    parser.add_argument("--scale", type=positive_int, default=defaults.scale, help="spatial ratio HR / LR, an integer "
                        "from 2 to 32")
    _add_size_args(parser, defaults)
    parser.add_argument("--initial-estimate", choices=["bicubic", "cs"], default=defaults.initial_estimate,
                        help="the first stage's input: the LR-HSI upsampled (the paper's) or component "
                        "substitution, which the stages then refine")
    parser.add_argument("--init-operators", choices=["random", "physics"], default=defaults.init_operators,
                        help="R and B at the start of training: Xavier (the paper's) or from the known response "
                        "and blur")
    parser.add_argument("--init-filters", choices=["random", "identity"], default=defaults.init_filters,
                        help="the filter heads at the start of training: Xavier (the paper's) or the identity, so "
                        "that the network starts by returning its initial estimate and learns a correction")
    _add_filter_impl_arg(parser)


def _add_data_args(parser):
    """The dataset and its protocol: where the HR-HSI scenes are, and how the LR-HSI and
    HR-MSI are simulated from them (the authors' values by default)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--cave", help="the CAVE database's complete_ms_data folder (values as read: the authors' "
                        "protocol)")
    source.add_argument("--data", help="any folder of HR-HSI scenes: cube files (.mat v5/v7.3, .npy, .npz, .h5, "
                        ".tif; named by their stem) or CAVE scene folders; each scene is divided by its robust peak")
    parser.add_argument("--blur-sigma", type=positive_float, default=2.0, help="sigma of the Gaussian blur "
                        "(scale x scale window) that simulates the LR-HSI")
    parser.add_argument("--srf", default="nikon_d700", help="spectral response that simulates the HR-MSI: a name "
                        "(nikon_d700: 31 bands, 400-700 nm) or a .csv/.npy file of one row per band")


def _tile(text):
    return text if text == "auto" else non_negative_int(text)


def _add_inference_args(parser):
    from .inference import PRECISIONS

    parser.add_argument("--tile", type=_tile, default="auto", help="HR tile size in pixels (a multiple of the scale), "
                        "0 for the whole image, or auto: the largest that fits a memory budget (half of the free GPU "
                        "memory, a third of the host's available memory), measured on two small tiles")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="bf16: bfloat16 autocast, the "
                        "filter in float32 as in training; about 2x faster where bf16 is native (recent GPUs, CPUs "
                        "with AVX512-BF16 or AMX), warned and slower elsewhere")


def _add_device_arg(parser):
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")


def _add_run_args(parser, out: str, out_help: str, replaced: str = None, seed: int = None, seeded: str = None):
    """The options every command that writes shares: --out (default `out`), --overwrite
    (what it replaces; none for a command that resumes instead), --device, and --seed
    (what it seeds) where the command draws random numbers."""
    parser.add_argument("--out", default=out, help=out_help)
    if replaced:
        parser.add_argument("--overwrite", action="store_true", help=f"replace {replaced} in --out")
    _add_device_arg(parser)
    if seeded:
        parser.add_argument("--seed", type=int, default=seed, help=f"seed of {seeded}")


def _add_filter_impl_arg(parser):
    from .ops import IMPLS

    parser.add_argument("--filter-impl", default="auto", choices=IMPLS,
                        help="the adaptive filter: fused kernels, the pure-PyTorch reference, or auto "
                             "(fused where compiled)")


def _srf(args, bands):
    from .data import spectral_response

    return spectral_response(args.srf, bands=bands)


def cmd_info(args):
    from . import __version__
    from .ops import available_impls, build_info

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(json.dumps({"dhif": __version__, "torch": torch.__version__, "build": build_info(),
                      "impls": {d: available_impls(d) for d in devices}}, indent=2))


def _scenes(args, names, cave_defaults):
    """The scenes named (or, by default, the CAVE split's / every scene of --data), scaled
    as their source's protocol says: CAVE as read, any other dataset by each scene's peak."""
    from .data import find_scenes, load_scenes

    if args.cave:
        if not names:  # the split's default scenes: say which are absent, before anything is read
            found = find_scenes(args.cave, cave_defaults)
            missing = [name for name in cave_defaults if name not in found]
            if missing and found:
                print(f"dhif {args.command}: {len(missing)} of the {len(cave_defaults)} default scenes are not under "
                      f"{args.cave}, so this uses {len(found)}: missing {', '.join(missing)}", file=sys.stderr,
                      flush=True)
        return load_scenes(args.cave, names or cave_defaults, require_all=bool(names), scaling="as-read")
    return load_scenes(args.data, names, require_all=bool(names), scaling="peak")


def _options(kind, args) -> dict:
    """The parsed options named as the fields of the dataclass `kind`, by name."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(kind) if hasattr(args, f.name)}


def cmd_train(args):
    from .data import CAVE_TEST_SCENES, CAVE_TRAIN_SCENES, PatchDataset, find_scenes
    from .devices import pick_device
    from .evaluate import scene_validator
    from .training import TrainConfig, train

    pick_device(args.device)  # refuse an unusable device before reading any data
    val_names = args.val_scenes or (CAVE_TEST_SCENES if args.cave else None)
    validating = bool(args.val_every and val_names)
    if args.data and not args.train_scenes:  # every scene of the folder that is not validation data
        args.train_scenes = [n for n in find_scenes(args.data) if n not in (args.val_scenes or [])]
    both = sorted(set(args.train_scenes or CAVE_TRAIN_SCENES) & set(val_names or []))
    if both and validating:
        raise ValueError(f"{', '.join(both)}: both a training and a validation scene; validating on training "
                         "data measures nothing. Choose other --val-scenes (or --val-every 0)")
    train_scenes = _scenes(args, args.train_scenes, CAVE_TRAIN_SCENES)
    if not train_scenes.cubes:
        raise ValueError(f"none of the training scenes ({', '.join(args.train_scenes or CAVE_TRAIN_SCENES)}) is "
                         f"under {args.cave or args.data}")
    val_scenes = _scenes(args, val_names, CAVE_TEST_SCENES) if validating else None
    bands = {cube.shape[0] for cube in train_scenes.cubes.values()}
    if len(bands) > 1:
        raise ValueError(f"the training scenes have different band counts ({sorted(bands)}); train on one kind")
    srf = _srf(args, bands.pop())
    # Options named as TrainConfig's fields go across as they are; the preset fills the rest.
    options = _options(TrainConfig, args)
    options.update(samples_per_epoch=args.samples, val_every=args.val_every if validating else 0,
                   time_limit=args.time_limit * 60 if args.time_limit else None, sigma=args.blur_sigma,
                   hsi_channels=srf.shape[1], msi_channels=srf.shape[0], data=str(args.cave or args.data),
                   scaling=train_scenes.scaling, srf=str(args.srf), train_scenes=list(train_scenes.cubes))
    config = dataclasses.replace(TrainConfig.from_preset(args.preset), **options)
    print(f"training on {len(train_scenes.cubes)} scenes: {', '.join(train_scenes.cubes)}", flush=True)
    dataset = PatchDataset(train_scenes.cubes, config.scale, srf, config.patch, config.samples_per_epoch,
                           config.sigma, config.seed, valid=train_scenes.valid)
    validate = scene_validator(val_scenes.cubes, config, srf, val_scenes.valid) if val_scenes else None
    result = train(config, dataset, validate, srf, apply_changes=args.apply_changes)
    print(json.dumps(result.summary()))


def _add_checkpoint_args(parser, checkpoint_help):
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--checkpoint", default=None, help=checkpoint_help)
    model.add_argument("--pretrained", action="store_true", help="a model that ships with dhif, for the scale "
                       "(dhif test: --scale, default 8; dhif fuse: the pair's): CAVE-trained, 31 bands and an RGB "
                       "image (see the README, \"A model trained on the CPU, shipped\")")


def _baselines_arg(parser, default_help):
    from .baselines import BASELINES, DEFAULT_BASELINES

    parser.add_argument("--baselines", nargs="+", default=list(DEFAULT_BASELINES), metavar="NAME",
                        help=f"classical methods scored beside DHIF-Net: all, none, or any of {', '.join(BASELINES)} "
                        f"(SFIM-HS, GLP-HS, CNMF, FUSE: see the README); {default_help}")


def _test_model(args, device):
    """(model or None, scale, bands or None) of `dhif test`: the checkpoint's, or with none
    only the baselines at --scale."""
    from .checkpoint import model_from_checkpoint

    if args.checkpoint:
        if args.scale is not None:
            raise ValueError("--scale is the checkpoint's own; give it only without --checkpoint (baselines only)")
        model = model_from_checkpoint(args.checkpoint, device, args.filter_impl)
        return model, model.scale, model.hsi_channels
    return None, args.scale or 8, None


def _scene_bands(scenes, model, bands) -> int:
    """The one band count of the test scenes, which a model's must match."""
    counts = {cube.shape[0] for cube in scenes.cubes.values()}
    bands = bands or (counts.pop() if len(counts) == 1 else None)
    for name, cube in scenes.cubes.items():
        if cube.shape[0] != bands:
            owner = "the model" if model is not None else "the first scene"
            raise ValueError(f"scene {name} has {cube.shape[0]} bands and {owner} {bands}")
    return bands


def cmd_test(args):
    from .data import CAVE_TEST_SCENES, CAVE_WAVELENGTHS, SCALINGS, SceneDataset
    from .devices import pick_device
    from .evaluate import ScoreSettings, score_scenes
    from .report import format_table

    device = pick_device(args.device)
    settings = ScoreSettings(**_options(ScoreSettings, args))
    settings.check(has_model=bool(args.checkpoint))  # before any scene is read
    model, scale, bands = _test_model(args, device)
    scenes = _scenes(args, args.scenes, CAVE_TEST_SCENES)
    if not scenes.cubes:
        raise ValueError(f"none of the test scenes ({', '.join(args.scenes or CAVE_TEST_SCENES)}) is under "
                         f"{args.cave or args.data}")
    bands = _scene_bands(scenes, model, bands)
    dataset = SceneDataset(scenes.cubes, scale, _srf(args, bands), args.blur_sigma, factors=scenes.factors,
                           unit_range=args.cave is not None,
                           wavelengths=CAVE_WAVELENGTHS if args.cave and bands == 31 else None, valid=scenes.valid)
    protocol = {"data": str(args.cave or args.data), "scenes": list(scenes.cubes), "srf": str(args.srf),
                "scaling": SCALINGS[scenes.scaling], "factors": scenes.factors,
                "pixels_without_data": {name: int((~valid).sum()) for name, valid in scenes.valid.items()},
                "checkpoint": str(args.checkpoint) if args.checkpoint else None}
    print(format_table(score_scenes(model, dataset, device, settings, args.out, protocol)))
    print(f"results written to {args.out}")


def cmd_fuse(args):
    from .data import load_cube
    from .fuse import FuseSettings, fuse

    lr_file = load_cube(args.lr_hsi, args.lr_key, args.lr_layout)
    msi_file = load_cube(args.hr_msi, args.msi_key, args.msi_layout)
    if args.pretrained:  # the shipped model for the pair's scale
        from .fuse import pair_scale
        from .pretrained import pretrained_path

        args.checkpoint = str(pretrained_path(pair_scale(lr_file.data, msi_file.data, args.scale)))
    truth_file = load_cube(args.truth, args.truth_key, args.lr_layout) if args.truth else None
    fuse(lr_file, msi_file, FuseSettings(**_options(FuseSettings, args)), args.out, truth_file)


def cmd_convert(args):
    from .models.convert import convert_checkpoint

    config = convert_checkpoint(args.input, args.output, args.overwrite)
    print(f"wrote {args.output}: DHIFNet({config})")


def cmd_demo(args):
    from .demo import run_demo

    run_demo(args.cave, args.steps, args.out, args.overwrite, args.device, args.seed)


class _HelpWithDefaults(argparse.RawDescriptionHelpFormatter):
    """Each option's help ends with its default, once: not for a required option, an option
    whose default is no value (None) or a flag's False, nor where the text already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (action.required or not action.option_strings or "default" in text
                or action.default in (None, False, argparse.SUPPRESS)):
            return text
        return f"{text} (default: %(default)s)"


def _add_info_command(sub, command):
    p = sub.add_parser("info", help="which kernels are compiled and active", **command)
    p.set_defaults(func=cmd_info)


def _add_train_command(sub, command, scenes: str, preset: str):
    """`dhif train`, its options defaulting to the preset's values."""
    from .training import PRESETS, TrainConfig

    defaults = TrainConfig.from_preset(preset)
    p = sub.add_parser("train", help="train DHIF-Net on CAVE (the paper's protocol by default)", epilog=scenes,
                       **command)
    _add_data_args(p)
    p.add_argument("--preset", choices=list(PRESETS), default=preset, help="the recipe every other option "
                   "defaults to: the paper's, or cpu (a small model that a 2-core machine trains in two hours; "
                   "see the README)")
    _add_run_args(p, "runs/dhif_x8", "checkpoints and logs; resumes from <out>/last.pt", seed=defaults.seed,
                  seeded="the weights and of every sample")
    _add_model_args(p, defaults)
    p.add_argument("--epochs", type=positive_int, default=defaults.epochs, help="epochs to train in all (a resumed "
                   "run continues up to this)")
    p.add_argument("--samples", type=positive_int, default=defaults.samples_per_epoch, help="training samples per epoch")
    p.add_argument("--batch-size", type=positive_int, default=defaults.batch_size, help="patches per step")
    p.add_argument("--patch", type=positive_int, default=defaults.patch, help="HR patch size in pixels (a multiple "
                   "of the scale)")
    p.add_argument("--lr", type=positive_float, default=defaults.lr,
                   help=f"Adam's initial learning rate (x{defaults.lr_decay:g} every {defaults.lr_decay_every} epochs "
                   f"up to epoch {defaults.lr_decay_until})")
    p.add_argument("--workers", type=non_negative_int, default=defaults.workers, help="DataLoader processes")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast: about 2x faster on recent "
                   "GPUs and on CPUs with AVX512-BF16 or AMX")
    p.add_argument("--val-every", type=non_negative_int, default=defaults.val_every, help="epochs between validations (0: none)")
    p.add_argument("--val-tile", type=_tile, default=defaults.val_tile, help="HR tile size in pixels for "
                   "validation images, 0 for the whole image, or auto (as dhif test's --tile)")
    p.add_argument("--tensorboard", action="store_true", help="also log to <out>/tensorboard")
    p.add_argument("--time-limit", type=positive_float, default=None, help="minutes; stop after the epoch that crosses it")
    p.add_argument("--checkpoint-every", type=non_negative_int, default=defaults.checkpoint_every,
                   help="also keep epoch_NNN.pt every N epochs (0: only last.pt)")
    p.add_argument("--apply-changes", action="store_true", help="when resuming, continue with settings that differ "
                   "from the checkpoint's (learning rate, patch, samples, seed, ...) instead of refusing")
    p.add_argument("--train-scenes", nargs="*", help="default: the authors' 20 training scenes (--cave), every "
                   "scene that is not a validation scene (--data)")
    p.add_argument("--val-scenes", nargs="*", help="default: the authors' 12 test scenes (--cave), none (--data)")
    p.set_defaults(func=cmd_train)


def _add_test_command(sub, command, scenes: str):
    p = sub.add_parser("test", help="metrics, figures and cubes on whole CAVE test scenes", epilog=scenes, **command)
    _add_data_args(p)
    _add_checkpoint_args(p, "from `dhif train` or `dhif convert`; without one (nor --pretrained), only the "
                         "baselines are scored")
    p.add_argument("--scale", type=positive_int, default=None, help="spatial ratio HR / LR without --checkpoint "
                   "(default 8; with one, the model's)")
    _baselines_arg(p, "default: bicubic cs")
    _add_run_args(p, "results", "folder for metrics.csv/json, protocol.json, figures/ and cubes/",
                  "an earlier run's metrics, figures and cubes")
    p.add_argument("--scenes", nargs="*", help="default: the authors' 12 test scenes (--cave), every scene (--data)")
    p.add_argument("--border", type=non_negative_int, default=0, help="HR pixels left out of the metrics at each "
                   "edge (the authors: 0)")
    _add_inference_args(p)
    p.add_argument("--overlap", type=non_negative_int, default=32, help="overlap of neighbouring tiles in HR "
                   "pixels (a multiple of the scale)")
    p.add_argument("--save-cubes", choices=["npy", "mat"], default=None, help="also save the fused cubes")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    _add_filter_impl_arg(p)
    p.set_defaults(func=cmd_test)


def _add_fuse_command(sub, command):
    from .data.readers import LAYOUTS
    from .fuse import CUBE_FORMATS, FuseSettings

    defaults = FuseSettings()

    p = sub.add_parser("fuse", help="fuse your own LR-HSI and HR-MSI (no ground truth)", **command)
    p.add_argument("--lr-hsi", required=True, help=".mat/.npy/.npz/.h5/.tif cube, GeoTIFF or ENVI (.hdr)")
    p.add_argument("--lr-key", default=None, help="array name in a .mat/.npz/.h5 file")
    p.add_argument("--lr-layout", choices=LAYOUTS, default="auto", help="axes of the LR-HSI array: chw (bands "
                   "first), hwc (bands last), or auto (only where the shape leaves no doubt)")
    p.add_argument("--hr-msi", required=True, help=".mat/.npy/.npz/.h5/.tif image, GeoTIFF or ENVI (.hdr)")
    p.add_argument("--msi-key", default=None, help="array name in a .mat/.npz/.h5 file")
    p.add_argument("--msi-layout", choices=LAYOUTS, default="auto", help="axes of the HR-MSI array, as --lr-layout")
    _add_checkpoint_args(p, "a trained model; without one (nor --pretrained), a model is trained on the pair "
                         "itself at reduced resolution (Wald's protocol)")
    p.add_argument("--wavelengths", default=None, help="the LR-HSI's band centres in nm: START:STOP (evenly spaced) "
                   "or a .csv/.txt/.npy file, one per band; default: read from the file where it has them, else "
                   "figures use band numbers")
    p.add_argument("--scale", type=positive_int, default=None, help="default: the size ratio of the inputs")
    p.add_argument("--psf-sigma", type=positive_float, default=None, help="the sigma of the sensor's Gaussian PSF in "
                   "HR pixels, where you know it; default: estimated from the pair, jointly with the spectral response")
    p.add_argument("--truth", default=None, help="a reference cube (the LR-HSI's bands at the HR-MSI's size, same "
                   "layout and units as the LR-HSI): every method is also scored against it (PSNR, SAM, ERGAS, SSIM)")
    p.add_argument("--truth-key", default=None, help="array name of --truth in a .mat/.npz/.h5 file")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=positive_int, default=defaults.steps, help="training steps of 4 patches "
                        "without --checkpoint, rounded up to a multiple of 8: the same numbers on any machine")
    budget.add_argument("--minutes", type=positive_float, default=None, help="train for this long instead of "
                        "--steps (results then depend on the machine)")
    _add_size_args(p, defaults, " of the model trained here")
    p.add_argument("--initial-estimate", choices=["auto", "bicubic", "cs"], default=defaults.initial_estimate,
                   help="where the model trained here starts: the LR-HSI upsampled, component substitution, or auto: "
                   "the one of the two that scores higher at reduced resolution on the pair")
    p.add_argument("--from-scratch", action="store_true", help="train a new model on the pair even where it fits a "
                   "shipped one (31 bands, RGB, x4, x8 or x16), which is otherwise fine-tuned on it, or applied unchanged "
                   "where the LR-HSI is under 16 x scale pixels a side")
    _add_inference_args(p)
    p.add_argument("--overlap", type=non_negative_int, default=defaults.overlap, help="overlap of neighbouring tiles "
                   "in HR pixels")
    _add_run_args(p, "fused", "folder for the fused cube, report.json and figures", "an earlier fusion's results",
                  defaults.seed, "the model trained here")
    p.add_argument("--format", choices=CUBE_FORMATS, default=None, help="file type of the fused cube: envi (.img + "
                   ".hdr) and tif (GeoTIFF) keep the georeference, wavelengths and no-data value; default: the "
                   "LR-HSI's own format where it is georeferenced, else tif where the HR-MSI is, else npy")
    _baselines_arg(p, "each is scored at reduced resolution and drawn in the figures (default: bicubic cs)")
    p.add_argument("--save-baselines", action="store_true", help="also write the baselines' cubes (bicubic.npy, "
                   "cs.npy, ...)")
    p.set_defaults(func=cmd_fuse)


def _add_convert_command(sub, command):
    p = sub.add_parser("convert", help="the authors' released checkpoint -> a safe state_dict checkpoint", **command)
    p.add_argument("input", help="the authors' file, e.g. model_500.pth")
    p.add_argument("output", help="the checkpoint to write (a .pt file)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.set_defaults(func=cmd_convert)


def _add_demo_command(sub, command):
    from .demo import DEFAULT_STEPS

    p = sub.add_parser("demo", help="simulate, train a small DHIF-Net and fine-tune the shipped one for a few "
                                    "minutes on the CPU, evaluate", **command)
    p.add_argument("--cave", default=None, help="use a real CAVE scene from this folder instead of a synthetic one")
    p.add_argument("--steps", type=positive_int, default=DEFAULT_STEPS,
                   help="each network's optimisation steps of 4 patches, rounded up to a multiple of 8 (the default "
                        "takes about 5 to 10 minutes for both on 2 CPU cores)")
    _add_run_args(p, None, "output folder (default: demo_out, or demo_out_cave with --cave)",
                  "an earlier demo's results", 0, "the scenes, the weights and every sample")
    p.set_defaults(func=cmd_demo)


def build_parser(train_preset: str = "paper") -> argparse.ArgumentParser:
    """The commands; train_preset: the recipe whose values `dhif train`'s options default to."""
    from .data import CAVE_TEST_SCENES, CAVE_TRAIN_SCENES

    parser = argparse.ArgumentParser(prog="dhif", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    scenes = (f"CAVE training scenes (the authors' split): {', '.join(CAVE_TRAIN_SCENES)}.\n"
              f"CAVE test scenes: {', '.join(CAVE_TEST_SCENES)}.")
    # Every option shows its default once; the scene names close the help of the commands that take scenes.
    command = dict(formatter_class=_HelpWithDefaults)
    _add_info_command(sub, command)
    _add_train_command(sub, command, scenes, train_preset)
    _add_test_command(sub, command, scenes)
    _add_fuse_command(sub, command)
    _add_convert_command(sub, command)
    _add_demo_command(sub, command)
    return parser


def _say_last(line: str):
    """The last line of a stopped command, on stderr. A terminal or pipe that the same Ctrl-C
    closed (`dhif train | tee log`) is not a reason to fail: streams that cannot be written
    are pointed at /dev/null, so that Python's final flush does not change the exit code."""
    for stream, text in ((sys.stderr, line + "\n"), (sys.stdout, "")):
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


def parse_args(argv=None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if getattr(args, "preset", "paper") != "paper":  # parse again with the preset's values as defaults
        args = build_parser(args.preset).parse_args(argv)
    if getattr(args, "pretrained", False) and args.command == "test":  # fuse's scale is its pair's: cmd_fuse
        from .pretrained import pretrained_path

        args.checkpoint, args.scale = str(pretrained_path(args.scale or 8)), None
    return args


def main(argv=None):
    from .memory import keep_freed_memory

    args = parse_args(argv)
    keep_freed_memory()  # process-wide, so made by the command, not by importing dhif
    started = time.time()
    from .training import TrainingInterrupted

    try:
        args.func(args)
    except (FileNotFoundError, ValueError, KeyError) as error:
        # str() of a KeyError is its argument's repr: quoted, unlike the others.
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"dhif {args.command}: error: {message}", file=sys.stderr)
        return 2
    except TrainingInterrupted as stopped:
        resume = ("; dhif fuse cannot resume it: run the command again with --overwrite to start over"
                  if args.command == "fuse" else "; run the same command to resume")
        _say_last(f"dhif {args.command}: {stopped}{resume}")
        return 128 + stopped.signum
    except KeyboardInterrupt:
        print(f"dhif {args.command}: interrupted", file=sys.stderr)
        return 130
    if args.command != "info":
        print(f"dhif {args.command}: done in {time.time() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
