"""Knowledge distillation of controlled students: loss, student construction, corpus, Trainer.

    loss.py     α·T²·KL(teacher_T ‖ student_T) + (1−α)·CE, a pure function
    student.py  teacher/student loading, a smaller student made from the teacher's layers, vocabulary checks
    corpus.py   text files, a Hub dataset, or teacher-generated sequences; collators
    trainer.py  DistillationTrainer (transformers.Trainer + compute_loss), distill(DistillConfig)
    record.py   the teacher record a checkpoint carries, read back by the harness wrappers (no torch)

The package imports nothing heavy itself: import the module you need.
"""
